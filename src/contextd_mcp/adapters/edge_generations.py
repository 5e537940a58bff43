"""Where an embedded collection's shard lives, generation by generation, and how a crash is undone.

``<root>/<collection>`` is what every reader names (the store, ``compact``, tenant migration). It
is either the collection's first directory, or a symbolic link to ``<root>/.generations/
<collection>/<n>``, a copy the indexer process built. A new generation becomes live by replacing
that link in one ``rename`` (atomic on POSIX); until then the old one is authoritative, and at
open every other directory under ``.generations/<collection>`` is a leftover and is deleted.

A generation is complete once it holds ``READY``, written by the daemon after it replayed every
acknowledged write onto it and flushed; only a complete generation may ever become live.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

GENERATIONS = ".generations"
READY = "contextd-generation.json"
RETIRED = "retired"
COPY_TIMEOUT_S = 1800  # a shard of a few GiB on a slow disk; past it the build is dropped


def collection_path(root: Path, name: str) -> Path:
    return root / name


def generations_dir(root: Path, name: str) -> Path:
    return root / GENERATIONS / name


def read_marker(path: Path) -> dict[str, Any]:
    """A generation's record (``indexed_points``: how many points its indexing saw); {} if none."""
    try:
        loaded = json.loads((path / READY).read_text())
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def write_marker(path: Path, record: dict[str, Any]) -> None:
    tmp = path / (READY + ".tmp")
    tmp.write_text(json.dumps(record))
    os.replace(tmp, path / READY)


def recover(root: Path, name: str) -> None:
    """Leaves ``<root>/<name>`` naming the authoritative generation and nothing else on disk.

    Runs before the collection opens. The only state in which the link is missing is a crash
    between retiring the first directory and linking its successor: that successor is complete
    (it was marked before the first directory was moved) and becomes live.
    """
    live = collection_path(root, name)
    gens = generations_dir(root, name)
    if not live.exists() and not live.is_symlink() and gens.is_dir():
        complete = sorted((p for p in gens.iterdir() if p.name.isdigit() and (p / READY).exists()), key=lambda p: int(p.name))
        if complete:
            link(root, name, complete[-1])
    keep = live.resolve() if live.is_symlink() else None
    if gens.is_dir():
        for entry in gens.iterdir():
            if entry.resolve() != keep:
                remove(entry)


def next_generation(root: Path, name: str) -> Path:
    gens = generations_dir(root, name)
    gens.mkdir(parents=True, exist_ok=True)
    taken = [int(p.name) for p in gens.iterdir() if p.name.isdigit()]
    return gens / str(max(taken, default=0) + 1)


def disk_bytes(path: Path) -> int:
    """Real (not sparse) size: the WAL's preallocated files count for what they hold. Files an
    indexing job deletes while this walks are skipped, not an error."""
    total = 0
    for folder, _, files in os.walk(path.resolve()):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_blocks * 512
            except FileNotFoundError:
                continue
    return total


def copy_shard(source: Path, target: Path) -> float:
    """Copies a flushed shard's files (no writer may touch them meanwhile). Seconds taken.

    The engine preallocates its files (32 MiB WAL files, pages, vector chunks) as sparse files: a
    plain copy writes their holes out (a 37 MiB collection became 219 MiB), ``cp --sparse``
    keeps them holes, and ``--reflink=auto`` shares the blocks where the file system can.
    """
    started = time.perf_counter()
    subprocess.run(  # fixed argv, paths of our own store
        ["/bin/cp", "-a", "--sparse=always", "--reflink=auto", "--", str(source.resolve()), str(target)],
        check=True, capture_output=True, timeout=COPY_TIMEOUT_S,
    )
    return time.perf_counter() - started


# (size, mtime in ns) of each file of a shard, by its path under the shard.
Stamps = dict[str, tuple[int, int]]
# A file changed this little before the pre-copy began is copied again whatever its stamp says:
# the file system's clock is coarse (a tick of a few ms), and a write within the tick of the
# stamp would leave the mtime as it was.
_RECENT_NS = 1_000_000_000


def stamp(source: Path) -> Stamps:
    """Every file's size and mtime under ``source``."""
    source = source.resolve()
    stamps: Stamps = {}
    for directory, _subdirs, names in os.walk(source):
        for name in names:
            path = Path(directory, name)
            st = path.stat()
            stamps[str(path.relative_to(source))] = (st.st_size, st.st_mtime_ns)
    return stamps


def catch_up(source: Path, target: Path, before: Stamps, since_ns: int) -> tuple[float, int]:
    """Makes ``target``, a copy of ``source`` made after ``before`` was stamped, equal to ``source``
    as it is now (no writer may touch it meanwhile): the files new or changed since, or changed
    within ``_RECENT_NS`` of ``since_ns``, are copied again; files gone from ``source`` go.
    Sound because every mapping of ``source`` was written back (``mapped_files.write_back``) at
    ``since_ns``, before ``before`` was stamped: the first write to a clean mapped page, and any
    write through a file descriptor, sets the file's mtime. (Seconds, bytes copied.)"""
    started = time.perf_counter()
    source = source.resolve()
    now = stamp(source)
    changed = [
        rel for rel, st in now.items()
        if before.get(rel) != st or before[rel][1] >= since_ns - _RECENT_NS
    ]
    for rel in set(before) - set(now):
        (target / rel).unlink(missing_ok=True)
    for directory, subdirs, _names in os.walk(target, topdown=False):
        rel_dir = Path(directory).relative_to(target)
        for sub in subdirs:
            if not (source / rel_dir / sub).is_dir():
                shutil.rmtree(Path(directory, sub), ignore_errors=True)
    by_dir: dict[Path, list[str]] = {}
    for rel in changed:
        by_dir.setdefault(Path(rel).parent, []).append(str(source / rel))
    for rel_dir, files in sorted(by_dir.items()):
        (target / rel_dir).mkdir(parents=True, exist_ok=True)
        subprocess.run(  # fixed argv, paths of our own store
            ["/bin/cp", "-a", "--sparse=always", "--reflink=auto", "--", *files, str(target / rel_dir)],
            check=True, capture_output=True, timeout=COPY_TIMEOUT_S,
        )
    return time.perf_counter() - started, sum(now[rel][0] for rel in changed)


def link(root: Path, name: str, generation: Path) -> None:
    """Makes ``generation`` live: one atomic rename of a fresh link over ``<root>/<name>``.

    The first time, ``<root>/<name>`` is a real directory, which a link cannot replace: it is
    moved aside first (``recover`` finishes the job if the process dies in between).
    """
    live = collection_path(root, name)
    if live.exists() and not live.is_symlink():
        os.rename(live, generations_dir(root, name) / RETIRED)
    tmp = root / f".{name}.link"
    if tmp.is_symlink():
        tmp.unlink()
    os.symlink(os.path.relpath(generation, root), tmp)
    os.replace(tmp, live)
    _sync_dir(root)


def remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path, ignore_errors=True)


def _sync_dir(path: Path) -> None:
    # The link's rename is the swap's record: make it durable before the old generation goes.
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
