#py
for i in range(10**6):
    print("line", i)
