"""A store process for the crash tests: fills a collection until it indexes, writes at ``stage``
and then waits to be killed (tests/adapters/test_edge_indexing.py).

    python -m tests.adapters._index_proc <root> <stage> <fd>

Writes ``filled <json>`` once the fill is acknowledged, ``acked <json>`` after the writes made at the
stage and ``ready <child pid or 0>`` when it stops there (in either order with ``filled``), to the
inherited pipe ``fd``, not stdout: the stage callback runs on the indexing thread while the main
thread may still be writing its 120 kB first line, and native code may write to fd 1 too.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np

from contextd_mcp.adapters import qdrant_edge_store as edge
from contextd_mcp.adapters.qdrant_edge_store import EdgeStore
from contextd_mcp.ports.vector_store import CollectionSpec, Record

DIM = 32
SPEC = CollectionSpec(name="keys", dim=DIM, model="test-model", keyword_fields=("tenant", "project"),
                      hot_fields=("tenant", "project"), sparse=True)
FILL = 3000
INDEX_AFTER = 2500


def records(rng: np.random.Generator, n: int, project: str = "p") -> list[Record]:
    v = rng.standard_normal((n, DIM)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return [Record(str(uuid.uuid4()), {"tenant": "t", "project": project}, x.tolist(), {i % 50: 1.0}) for i, x in enumerate(v)]


_said = threading.Lock()
_out: list[int] = []


def say(line: str) -> None:
    data = (line + "\n").encode()
    with _said:  # one whole line at a time, whichever thread speaks
        while data:
            data = data[os.write(_out[0], data) :]


def main(root: Path, stop_at: str, fd: int) -> None:
    _out.append(fd)
    edge.INDEXING_THRESHOLD_KB = 50  # 3,000 points of 32 dims make an indexed segment
    rng = np.random.default_rng(7)
    store: EdgeStore

    def at(collection: str, stage: str) -> None:
        if stage != stop_at:
            return
        if stage == "build":  # writes acknowledged while the child builds
            extra = records(rng, 20, project="during")
            store.upsert(collection, extra)
            store.set_fields(collection, first[0].id, {"learned": "yes"}, {"tenant": "t"})
            store.delete(collection, [first[1].id], {"tenant": "t"})
            say("acked " + json.dumps({"upserted": [r.id for r in extra], "set": first[0].id, "deleted": first[1].id}))
        job = store._jobs[collection]  # the job's own record of its child
        say(f"ready {job.state.get('child_pid', 0)}")
        time.sleep(3600)

    # Nice 0: the suite loads the machine, and at 19 a build can wait there for minutes.
    store = EdgeStore(root, index_after=INDEX_AFTER, on_stage=at, index_nice=0)
    store.ensure(SPEC)
    first = records(rng, FILL)
    for i in range(0, FILL, 100):
        store.upsert("keys", first[i : i + 100])
    say("filled " + json.dumps({"upserted": [r.id for r in first]}))
    threading.Event().wait(3600)


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]))
