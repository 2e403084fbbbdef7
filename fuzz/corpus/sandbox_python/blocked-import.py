#py
import socket
