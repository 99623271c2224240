"""Libraries that do their own file I/O (json, pickle, csv, numpy, pandas) on CAPIO files, in one
process and between separate processes, and the write-to-temp-then-rename pattern."""

from __future__ import annotations

import csv
import json
import os
import pickle
from pathlib import Path

import numpy as np
import pandas as pd

from conftest import InProcess, Workflow, wait_until


def test_json_pickle_csv(capio: InProcess) -> None:
    record = {"name": "é", "values": [1, 2.5, None], "nested": {"ok": True}}
    with capio.context():
        with open(capio.path("r.json"), "w", encoding="utf-8") as f:
            json.dump(record, f)
        with open(capio.path("r.json"), encoding="utf-8") as f:
            assert json.load(f) == record
        with open(capio.path("r.pkl"), "wb") as f:
            pickle.dump((record, b"\0" * 100_000), f, protocol=pickle.HIGHEST_PROTOCOL)
        with open(capio.path("r.pkl"), "rb") as f:
            assert pickle.load(f) == (record, b"\0" * 100_000)
        rows = [["id", "text"], ["1", 'a "quoted", value'], ["2", "multi\nline"], ["3", "crlf\r\nend"]]
        with open(capio.path("r.csv"), "w", newline="") as f:
            csv.writer(f).writerows(rows)
        with open(capio.path("r.csv"), newline="") as f:
            assert list(csv.reader(f)) == rows
        with open(capio.path("r.csv"), newline="") as f:
            assert [r["id"] for r in csv.DictReader(f)] == ["1", "2", "3"]
    # Nothing of it reached the disk yet: these are CAPIO files.
    assert not Path(capio.path("r.json")).exists()


def test_numpy(capio: InProcess) -> None:
    a = np.random.default_rng(1).normal(size=(300, 40))
    with capio.context():
        np.save(capio.path("a.npy"), a)
        assert np.array_equal(np.load(capio.path("a.npy")), a)
        np.savez_compressed(capio.path("z.npz"), a=a, b=np.arange(5))
        with np.load(capio.path("z.npz")) as z:
            assert np.array_equal(z["a"], a) and z["b"].tolist() == [0, 1, 2, 3, 4]
        np.savetxt(capio.path("a.txt"), a[:5])
        assert np.allclose(np.loadtxt(capio.path("a.txt")), a[:5])
        with open(capio.path("a.npy"), "rb") as f:
            # The .npy header is read as usual, the data viewed in place.
            fmt = np.lib.format
            version = fmt.read_magic(f)
            read_header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
            shape, _, dtype = read_header(f)
            offset = f.tell()
            view = np.frombuffer(f.view(offset), dtype=dtype).reshape(shape)
        assert np.array_equal(view, a) and not view.flags.writeable


def test_pandas(capio: InProcess) -> None:
    df = pd.DataFrame(
        {"x": range(1000), "y": [f"row {i}, é" for i in range(1000)], "z": np.linspace(0, 1, 1000)}
    )
    with capio.context():
        df.to_csv(capio.path("df.csv"), index=False)
        pd.testing.assert_frame_equal(pd.read_csv(capio.path("df.csv")), df)
        df.to_pickle(capio.path("df.pkl"))
        pd.testing.assert_frame_equal(pd.read_pickle(capio.path("df.pkl")), df)
        df.to_json(capio.path("df.json"), orient="records", lines=True)
        pd.testing.assert_frame_equal(pd.read_json(capio.path("df.json"), orient="records", lines=True), df)
        with open(capio.path("df-handle.csv"), "w", newline="") as f:
            df.to_csv(f, index=False)
        with open(capio.path("df-handle.csv")) as f:
            pd.testing.assert_frame_equal(pd.read_csv(f), df)
        assert os.path.getsize(capio.path("df.csv")) > 10_000


PANDAS_PRODUCER = """
    import sys, time
    import numpy as np, pandas as pd
    out = sys.argv[1]
    df = pd.DataFrame({"step": range(5000), "value": np.arange(5000) * 0.5, "label": ["a,b"] * 5000})
    time.sleep(0.3)  # the consumer is already waiting in open()
    df.to_csv(out, index=False)
    df.to_pickle(out + ".pkl")
"""

PANDAS_CONSUMER = """
    import sys
    import pandas as pd
    src, marker = sys.argv[1], sys.argv[2]
    open(marker, "w").close()
    df = pd.read_csv(src)  # waits for the file to appear, then for its commit
    again = pd.read_pickle(src + ".pkl")
    assert df.equals(again), (df.head(), again.head())
    print(len(df), df["value"].sum(), df["label"].iloc[0])
"""


def test_pandas_producer_and_consumer_in_separate_processes(workflow: Workflow) -> None:
    workflow.start_peer()  # attached: a consumer started first waits for the producer
    out = workflow.capio_dir / "table.csv"
    consumer = workflow.start_step(PANDAS_CONSUMER, "consumer", str(out), str(workflow.marker("c")))
    assert wait_until(lambda: workflow.marker("c").exists(), 30)
    assert consumer.running()
    workflow.run_step(PANDAS_PRODUCER, "producer", str(out)).check()
    result = consumer.wait(90).check()
    assert result.stdout.split() == ["5000", str(sum(range(5000)) * 0.5), "a,b"]
    # Committed files are persisted (no CAPIO-CL file): the table is on disk too.
    assert pd.read_csv(out).shape == (5000, 3)


def test_temp_then_rename_publishes_to_a_waiting_consumer(workflow: Workflow) -> None:
    workflow.start_peer()  # attached: a consumer started first waits for the producer
    final = workflow.capio_dir / "results" / "final.json"
    consumer = workflow.start_step(
        """
        import json, os, sys
        final, marker = sys.argv[1], sys.argv[2]
        open(marker, "w").close()
        with open(final) as f:  # waits until the producer renames its temporary file into place
            print(json.load(f)["status"], sorted(os.listdir(os.path.dirname(final))))
        """,
        "consumer",
        str(final),
        str(workflow.marker("waiting")),
    )
    assert wait_until(lambda: workflow.marker("waiting").exists(), 30)
    workflow.run_step(
        """
        import json, os, sys, tempfile, time
        final = sys.argv[1]
        os.makedirs(os.path.dirname(final), exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=os.path.dirname(final), suffix=".part", delete=False) as t:
            json.dump({"status": "partial"}, t)
            t.flush()
            time.sleep(0.2)
            t.seek(0)
            t.truncate()
            json.dump({"status": "complete"}, t)
        os.replace(t.name, final)
        """,
        "producer",
        str(final),
    ).check()
    result = consumer.wait(60).check()
    assert result.stdout.split() == ["complete", "['final.json']"]
    assert json.loads(final.read_text()) == {"status": "complete"}
    assert [p.name for p in final.parent.iterdir()] == ["final.json"]


def test_shutil_copy_out_of_a_file_still_being_produced_waits(workflow: Workflow, tmp_path: Path) -> None:
    workflow.start_peer()  # attached: a consumer started first waits for the producer
    # shutil.copyfile uses os.sendfile on the reader's fd: through CAPIO it waits for the data.
    src = workflow.capio_dir / "stream.bin"
    copy = tmp_path / "copy.bin"
    consumer = workflow.start_step(
        """
        import shutil, sys
        src, dst, marker = sys.argv[1:]
        open(marker, "w").close()
        shutil.copyfile(src, dst)
        """,
        "copier",
        str(src),
        str(copy),
        str(workflow.marker("copier")),
    )
    assert wait_until(lambda: workflow.marker("copier").exists(), 30)
    workflow.run_step(
        """
        import sys, time
        with open(sys.argv[1], "wb") as f:
            for i in range(20):
                f.write(bytes([i]) * 100_000)
                f.flush()
                time.sleep(0.01)
        """,
        "producer",
        str(src),
    ).check()
    consumer.wait(60).check()
    assert copy.read_bytes() == b"".join(bytes([i]) * 100_000 for i in range(20))
