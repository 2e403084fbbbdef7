#py
import requests
try:
    requests.get("http://169.254.169.254/")
except Exception as e:
    print(type(e).__name__, e)
