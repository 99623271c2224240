"""Consumer step: summarise each chunk of ``series.csv`` as soon as it arrives.

Ordinary Python (no pycapio import). Started before the producer, its ``open()`` waits for the file
to exist; with the ``no_update`` rule each ``readline()`` returns as soon as the producer has flushed
the line and waits at the current end, and end-of-file comes only when the producer closes the file.
Writes ``summary.txt`` (permanent: it is on disk after the run). Prints ``chunks=N rows=R sha256=H``
like the producer, then ``chunk K processed_at=T`` for each chunk.
"""

import hashlib
import os
import sys
import time

path = sys.argv[1]
summary_path = os.path.join(os.path.dirname(path), "summary.txt")

digest = hashlib.sha256()
chunks = rows = 0
processed_at = []
with open(path, newline="") as f, open(summary_path, "w") as summary:
    while header := f.readline():  # blocks until the producer flushes the next chunk
        digest.update(header.encode())
        _, _, k, _, n = header.split()
        total = 0.0
        for _ in range(int(n)):
            line = f.readline()
            digest.update(line.encode())
            total += float(line.rsplit(",", 1)[1])
        summary.write(f"chunk {k}: {n} rows, mean {total / int(n):.4f}\n")
        processed_at.append((int(k), time.time()))
        chunks += 1
        rows += int(n)

print(f"chunks={chunks} rows={rows} sha256={digest.hexdigest()}")
for k, t in processed_at:
    print(f"chunk {k} processed_at={t:.6f}")
