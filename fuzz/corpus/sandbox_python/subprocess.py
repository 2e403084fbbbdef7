#py
import subprocess
subprocess.run(["ls"])
