#py
print("hi")
import sys
print("err", file=sys.stderr)
{"a": [1, 2], "b": None}
