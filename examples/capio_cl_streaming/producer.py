"""Producer step: a simulation that writes its time series chunk by chunk to ``series.csv``.

Ordinary Python (no pycapio import). Under ``pycapio --capio-cl capio_cl.json`` the file is
``no_update``: each chunk is readable by the consumer as soon as it is flushed, while the next one
is being computed. Prints ``chunks=N rows=R sha256=H`` and, last, ``finished_at=T`` (epoch seconds).
"""

import hashlib
import random
import sys
import time

path = sys.argv[1]
chunks = int(sys.argv[2]) if len(sys.argv) > 2 else 20
rows_per_chunk = int(sys.argv[3]) if len(sys.argv) > 3 else 20_000
compute_seconds = float(sys.argv[4]) if len(sys.argv) > 4 else 0.1

rng = random.Random(2024)
digest = hashlib.sha256()
with open(path, "w", newline="") as f:
    for k in range(chunks):
        time.sleep(compute_seconds)  # "computing" chunk k
        lines = [f"# chunk {k} rows {rows_per_chunk}\n"]
        lines += [f"{k},{i},{rng.gauss(10.0 + k, 2.0):.6f}\n" for i in range(rows_per_chunk)]
        text = "".join(lines)
        f.write(text)
        f.flush()  # hand chunk k to the consumer now
        digest.update(text.encode())
        print(f"producer: wrote chunk {k}", file=sys.stderr)
# The close commits the file (on_close): the consumer's reads reach end-of-file.

print(f"chunks={chunks} rows={chunks * rows_per_chunk} sha256={digest.hexdigest()}")
print(f"finished_at={time.time():.6f}")
