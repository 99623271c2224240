"""Producer step: render N tiles, one file each, into the directory ``tiles/``.

Ordinary Python (no pycapio import). Under ``pycapio --capio-cl capio_cl.json`` the directory is
``on_n_files`` (8) + ``no_update``: a consumer's ``os.scandir`` yields each tile as soon as it is
created, and ends when the 8th is there. Each tile is committed when it is closed (``on_close``).
Prints ``files=N sha256=H`` and, last, ``finished_at=T`` (epoch seconds).
"""

import hashlib
import os
import random
import sys
import time

tiles = sys.argv[1]
count = int(sys.argv[2]) if len(sys.argv) > 2 else 8  # must match n_files in capio_cl.json
compute_seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 0.2

rng = random.Random(7)
digest = hashlib.sha256()
os.makedirs(tiles)
for i in range(count):
    time.sleep(compute_seconds)  # "rendering" tile i
    name = f"tile-{i:03d}.csv"
    text = "".join(f"{x},{y},{rng.random():.6f}\n" for y in range(64) for x in range(64))
    with open(os.path.join(tiles, name), "w", newline="") as f:
        f.write(text)
    digest.update(name.encode() + text.encode())
    print(f"producer: wrote {name}", file=sys.stderr)

print(f"files={count} sha256={digest.hexdigest()}")
print(f"finished_at={time.time():.6f}")
