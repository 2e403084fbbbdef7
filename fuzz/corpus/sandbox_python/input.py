#py
input
