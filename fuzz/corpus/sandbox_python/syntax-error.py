#py
def f(:
