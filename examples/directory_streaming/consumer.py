"""Consumer step: process each tile of ``tiles/`` as soon as it appears.

Ordinary Python (no pycapio import). Started before the producer, it waits for the directory to
exist, then iterates ``os.scandir``: with the directory's ``no_update`` rule the iteration yields
every new file as it is created and ends only when the directory is committed (``on_n_files``).
Writes ``report.txt`` (permanent: it is on disk after the run). Prints ``files=N sha256=H`` like the
producer, then ``NAME processed_at=T`` for each file.
"""

import hashlib
import os
import sys
import time

tiles = sys.argv[1]
report_path = os.path.join(os.path.dirname(tiles), "report.txt")

# The directory does not exist until the producer makes it (os.path never waits).
deadline = time.monotonic() + 60
while not os.path.isdir(tiles):
    if time.monotonic() > deadline:
        sys.exit(f"{tiles} did not appear")
    time.sleep(0.05)

digest = hashlib.sha256()
processed = []
with os.scandir(tiles) as entries, open(report_path, "w") as report:
    for entry in entries:  # yields each tile as it is created
        with open(entry.path, newline="") as f:  # waits for the tile's commit (its close)
            text = f.read()
        values = [float(line.rsplit(",", 1)[1]) for line in text.splitlines()]
        report.write(f"{entry.name}: {len(values)} pixels, mean {sum(values) / len(values):.4f}\n")
        digest.update(entry.name.encode() + text.encode())
        processed.append((entry.name, time.time()))

print(f"files={len(processed)} sha256={digest.hexdigest()}")
for name, t in processed:
    print(f"{name} processed_at={t:.6f}")
