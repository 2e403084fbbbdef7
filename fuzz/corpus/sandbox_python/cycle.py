#py
l = []
l.append(l)
l
