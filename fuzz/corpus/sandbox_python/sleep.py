#py
import time
time.sleep(10)
"slept"
