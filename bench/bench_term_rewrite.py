"""The one-time rewrite of stored sparse vectors to per-tenant term indexes, timed.

    .venv/bin/python -m bench.bench_term_rewrite [--records 100000] [--tenants 20]

Writes ``--records`` remediation-like records with plain term indexes (as the code before
per-tenant terms did) into a fresh embedded store, closes it, then opens it through ``Stores``
(what the daemon does at start) and times the rewrite, the RSS it peaked at, and a second open
(the marker: nothing to do). Dense vectors are placeholders: the rewrite never reads them.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
import uuid
from pathlib import Path

from contextd_mcp.adapters.qdrant_edge_store import EdgeStore
from contextd_mcp.ports.scoped_store import Stores
from contextd_mcp.ports.vector_store import CollectionSpec, Record
from contextd_mcp.services.error_text import normalise, sparse_vector

WORDS = ("ModuleNotFoundError ImportError OperationalError TimeoutError database locked ledger billing orders "
         "search gateway module named yaml boto3 psycopg kafka consumer lag vault password rotate cron").split()


def _write_plain(root: Path, records: int, tenants: int, dim: int) -> CollectionSpec:
    spec = CollectionSpec("remediations", dim, "bench", ("tenant", "team", "project"), sparse=True,
                          hot_fields=("tenant", "team", "project"))
    store = EdgeStore(root)
    store.ensure(spec)  # the raw store: no rewrite, as before
    batch = []
    for n in range(records):
        text = " ".join(WORDS[(n * k + k) % len(WORDS)] for k in range(1, 12)) + f" service{n % 97} line{n % 500}"
        payload = {"tenant": f"t{n % tenants}", "team": "core", "project": "api"}
        batch.append(Record(str(uuid.uuid4()), payload, None, sparse_vector(normalise(text), unit=True)))
        if len(batch) == 1000:
            store.upsert(spec.name, batch)
            batch = []
    store.upsert(spec.name, batch)
    store.close()
    return spec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--tenants", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="contextd-term-rewrite-") as tmp:
        root = Path(tmp)
        spec = _write_plain(root, args.records, args.tenants, dim=384)
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        store = EdgeStore(root)
        started = time.perf_counter()
        Stores(store).ensure(spec)
        rewrite_s = time.perf_counter() - started
        store.close()
        store = EdgeStore(root)
        started = time.perf_counter()
        Stores(store).ensure(spec)
        reopen_s = time.perf_counter() - started
        store.close()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"records {args.records} tenants {args.tenants}: rewrite {rewrite_s:.1f} s "
          f"({args.records / rewrite_s:.0f}/s), reopen {reopen_s * 1000:.0f} ms, peak RSS {peak // 1024} MiB "
          f"(before the rewrite {rss_before // 1024} MiB), load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
