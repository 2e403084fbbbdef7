#py
while True:
    pass
