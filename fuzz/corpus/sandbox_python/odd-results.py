#py
{1, 2, 3}, b"x", float("nan"), 1j
