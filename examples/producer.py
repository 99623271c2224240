"""Step 1 of the example workflow: write measurements to a CSV file, row by row.

Ordinary Python: run it under ``pycapio`` and the file is served from memory to the consumer.
"""

import hashlib
import random
import sys

path = sys.argv[1]
rows = int(sys.argv[2]) if len(sys.argv) > 2 else 400_000

rng = random.Random(42)
digest = hashlib.sha256()
with open(path, "w", newline="") as f:
    header = "sensor,step,value\n"
    f.write(header)
    digest.update(header.encode())
    for i in range(rows):
        line = f"s{i % 16},{i},{rng.gauss(20.0, 5.0):.6f}\n"
        f.write(line)
        digest.update(line.encode())

print(f"rows={rows} sha256={digest.hexdigest()}")
