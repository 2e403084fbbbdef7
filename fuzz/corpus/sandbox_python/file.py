#py
open("/etc/passwd").read()
