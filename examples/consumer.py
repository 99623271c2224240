"""Step 2 of the example workflow: read the producer's CSV file and summarise it.

Ordinary Python: under ``pycapio`` its ``open()`` waits until the producer has created and
finished the file, even though this step starts first.
"""

import hashlib
import sys

path = sys.argv[1]

digest = hashlib.sha256()
rows = 0
total = 0.0
with open(path, newline="") as f:
    header = f.readline()
    digest.update(header.encode())
    for line in f:
        digest.update(line.encode())
        total += float(line.rsplit(",", 1)[1])
        rows += 1

print(f"rows={rows} sha256={digest.hexdigest()}")
print(f"mean value {total / max(rows, 1):.3f}", file=sys.stderr)
