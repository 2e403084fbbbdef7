#py
raise ValueError("boom")
