"""Realistic records for scale runs: lessons with their keys, remediations, and vectors for 1k…1M.

Texts are composed from templates over a vocabulary of libraries, errors, causes and fixes
(seeded: the same n and seed give the same records). Each lesson has five keys, as stored by
``MemoryService.store_many``: doc, title, two ``applies_when`` phrases and the ``error`` it
answers; one remediation is generated per ten lessons.

Vectors. Embedding a million texts with the real model takes about an hour and a half here
(≈ 340 short texts/s on 2 cores), so only a *pool* is embedded for real, once (cached under
``~/.cache/contextd-bench``): ``POOL_PER_KIND`` texts of each key kind, composed by the same
templates. Every generated text then gets a *derived* vector: the real vector of a pool text
of the same kind that shares its library and error (its "parent"), mixed with the real vector
of a second pool text of that kind sharing only the library, plus Gaussian noise, normalised:

    v = normalise(PARENT_WEIGHT * parent + SIBLING_WEIGHT * sibling + NOISE * g),  g ~ N(0, I/dim)

so derived vectors keep the real model's geometry (where libraries and errors cluster, how
far apart unrelated lessons are), and no two records share a vector. ``python -m
bench.scale_records --check`` compares the nearest-neighbour cosine histogram of a set of real
embeddings with that of the same number of derived ones (derived from the *other* half of the
pool, so no vector is compared with its own parent); the weights above were set from it.

Queries are not derived: the daemon embeds them with the real model, as it would.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from contextd_mcp.models.requests import StoreMemory
from contextd_mcp.ports.embedder import Embedder

POOL_PER_KIND = 800
PARENT_WEIGHT = 1.0
SIBLING_WEIGHT = 0.6
NOISE = 0.75
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "contextd-bench"

LIBRARIES = (
    "pytest", "docker", "git", "postgres", "redis", "kubernetes", "terraform", "npm", "cargo", "go modules", "webpack",
    "vite", "django", "fastapi", "react", "celery", "nginx", "grpc", "kafka", "airflow", "mypy", "ruff", "poetry", "pip",
    "sqlalchemy", "alembic", "numpy", "pandas", "pydantic", "uvicorn", "gunicorn", "boto3", "helm", "ansible", "jest",
    "eslint", "typescript", "node", "yarn", "pnpm", "maven", "gradle", "spring boot", "rails", "sidekiq", "rabbitmq",
    "elasticsearch", "mongodb", "mysql", "sqlite", "github actions", "gitlab ci", "bazel", "cmake", "openssl", "curl",
    "tokio", "serde", "prometheus", "grafana",
)
ERRORS = (
    ("flaky test", "AssertionError: expected 200, got 503"),
    ("slow build", "build step exceeded 30 minutes"),
    ("memory leak", "RSS grows 50 MiB an hour until OOMKilled"),
    ("deadlock", "deadlock detected while waiting for ShareLock"),
    ("timeout", "TimeoutError: operation timed out after 30s"),
    ("cache miss", "cache hit rate dropped to 3 percent"),
    ("version conflict", "ResolutionImpossible: conflicting dependencies"),
    ("permission error", "PermissionError: [Errno 13] Permission denied"),
    ("race condition", "IntegrityError: duplicate key value violates unique constraint"),
    ("config drift", "staging and production disagree on the feature flag"),
    ("stale lockfile", "lockfile is out of date with the manifest"),
    ("broken migration", "relation does not exist after the migration ran"),
    ("OOM kill", "container exited with code 137"),
    ("connection refused", "ConnectionRefusedError: [Errno 111] Connection refused"),
    ("TLS failure", "SSL: CERTIFICATE_VERIFY_FAILED"),
    ("missing module", "ModuleNotFoundError: No module named"),
    ("type error", "TypeError: 'NoneType' object is not subscriptable"),
    ("disk full", "No space left on device"),
    ("rate limit", "429 Too Many Requests"),
    ("clock skew", "token used before issued"),
    ("encoding error", "UnicodeDecodeError: 'utf-8' codec can't decode byte"),
    ("segfault", "Segmentation fault (core dumped)"),
    ("port clash", "address already in use"),
    ("DNS failure", "Temporary failure in name resolution"),
    ("zombie workers", "workers stop picking up jobs after a deploy"),
)
FIXES = (
    "pin the version", "add a retry with exponential backoff", "raise the connection pool size", "isolate the fixture",
    "clear the build cache", "run it inside a transaction", "set an explicit timeout", "split the job in two",
    "add an index on the column", "commit the lockfile", "move it to a background worker", "log the request id",
    "disable the plugin in CI", "mount a tmpfs for the cache", "use a health check before starting",
    "set the locale to C.UTF-8", "bump the base image", "read the secret from the environment",
    "order the migrations explicitly", "close the session in a finally block", "use a unique port per worker",
    "cap the batch size", "run the step as the build user", "regenerate the certificates",
)
CAUSES = (
    "a transitive dependency upgraded itself", "two workers shared one temp directory", "the pool was exhausted",
    "the default timeout is infinite", "the image changed underneath us", "a fixture leaked state between tests",
    "the cache key ignored the lockfile", "the migration ran before the schema existed", "the container ran as root",
    "retries amplified the load",
)
TASKS = (
    "setting up CI for", "upgrading", "debugging a failing deploy of", "speeding up the tests of",
    "containerising", "migrating the database behind", "adding monitoring to", "onboarding a new service on",
)
KINDS = ("doc", "title", "applies_when", "error")


@dataclass(frozen=True)
class Lesson:
    request: StoreMemory
    task: str
    error: str
    library: int
    problem: int


@dataclass
class Texts:
    """One lesson's key texts by kind, with the slots a derived vector is keyed on."""

    library: int
    problem: int
    by_kind: dict[str, list[str]] = field(default_factory=dict)


def lesson(i: int, rng: random.Random) -> Lesson:
    lib, prob = rng.randrange(len(LIBRARIES)), rng.randrange(len(ERRORS))
    library, (problem, message) = LIBRARIES[lib], ERRORS[prob]
    fix, cause, task = rng.choice(FIXES), rng.choice(CAUSES), rng.choice(TASKS)
    service = f"svc-{rng.randint(1, 400)}"
    title = f"{library}: {problem} in {service}, {fix}"
    content = (
        f"When {library} showed a {problem} ({message}) in {service}, the cause was that {cause}. "
        f"We had to {fix}; it held for {rng.randint(2, 90)} days after change {rng.randint(1000, 99999)}. "
        f"Check this first next time {library} reports {problem}s (lesson {i})."
    )
    applies = [f"{task} {library} and hitting {problem}", f"{message} from {library} in {service}"]
    request = StoreMemory(
        title=title, content=content, description=f"{library} {problem}: {fix}.", outcome="success" if rng.random() < 0.8 else "failure",  # type: ignore[arg-type]
        tags=[library.replace(" ", "-"), problem.replace(" ", "-")], applies_when=applies,
    )
    return Lesson(request, f"{task} {library}", f"{library}: {message}", lib, prob)


def lessons(n: int, seed: int = 7) -> Iterator[Lesson]:
    rng = random.Random(seed)
    for i in range(n):
        yield lesson(i, rng)


def key_texts(item: Lesson) -> Texts:
    """The texts MemoryService will embed for this lesson (same composition as ``key_texts``)."""
    r = item.request
    doc = f"{r.title}. {r.description}\n{r.content}"
    return Texts(item.library, item.problem, {"doc": [doc], "title": [r.title], "applies_when": list(r.applies_when),
                                               "error": [item.error]})


def queries(n: int, seed: int = 11) -> list[str]:
    """Queries an agent would type: a symptom in its own words, sometimes with the library."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        library, (problem, message) = rng.choice(LIBRARIES), rng.choice(ERRORS)
        form = rng.randrange(3)
        if form == 0:
            out.append(f"{problem} with {library}, how did we fix it")
        elif form == 1:
            out.append(f"{message}")
        else:
            out.append(f"{rng.choice(TASKS)} {library}: {problem}")
    return out


class VectorBank:
    """Real embeddings of a pool of texts per kind, and derived vectors for any generated text."""

    def __init__(self, pool: dict[str, np.ndarray], slots: dict[str, np.ndarray], seed: int = 3) -> None:
        self.pool = pool  # kind → (POOL_PER_KIND, dim) unit vectors
        self.slots = slots  # kind → (POOL_PER_KIND, 2): library, problem of each pool text
        self._rng = np.random.default_rng(seed)
        self._index: dict[tuple[str, int, int], np.ndarray] = {}
        self._by_library: dict[tuple[str, int], np.ndarray] = {}
        for kind, s in slots.items():
            exact: dict[tuple[str, int, int], list[int]] = {}
            near: dict[tuple[str, int], list[int]] = {}
            for row, (lib, prob) in enumerate(s):
                exact.setdefault((kind, int(lib), int(prob)), []).append(row)
                near.setdefault((kind, int(lib)), []).append(row)
            self._index.update({k: np.asarray(v) for k, v in exact.items()})
            self._by_library.update({k: np.asarray(v) for k, v in near.items()})

    @property
    def dim(self) -> int:
        return int(next(iter(self.pool.values())).shape[1])

    def _pick(self, kind: str, library: int, problem: int, rows: np.ndarray | None) -> tuple[int, int]:
        """A parent sharing library and problem (else the library), and a sibling sharing the library."""
        everything = np.arange(len(self.pool[kind]))
        allowed = everything if rows is None else rows

        def among(candidates: np.ndarray | None) -> np.ndarray:
            if candidates is None:
                return np.empty(0, int)
            return candidates if rows is None else np.intersect1d(candidates, allowed)

        siblings = among(self._by_library.get((kind, library)))
        parents = among(self._index.get((kind, library, problem)))
        parents = parents if len(parents) else siblings if len(siblings) else allowed
        siblings = siblings if len(siblings) else allowed
        return int(parents[self._rng.integers(len(parents))]), int(siblings[self._rng.integers(len(siblings))])

    def derive(self, kind: str, library: int, problem: int, rows: np.ndarray | None = None) -> np.ndarray:
        parent, sibling = self._pick(kind, library, problem, rows)
        noise = self._rng.standard_normal(self.dim).astype(np.float32) / np.sqrt(self.dim)
        v = PARENT_WEIGHT * self.pool[kind][parent] + SIBLING_WEIGHT * self.pool[kind][sibling] + NOISE * noise
        return (v / np.linalg.norm(v)).astype(np.float32)


def _embed_pool(embed: Embedder, seed: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    texts: dict[str, list[str]] = {k: [] for k in KINDS}
    slots: dict[str, list[tuple[int, int]]] = {k: [] for k in KINDS}
    for item in lessons(POOL_PER_KIND, seed=seed):
        for kind, values in key_texts(item).by_kind.items():
            texts[kind].append(values[0])
            slots[kind].append((item.library, item.problem))
    pool = {k: np.asarray(embed.embed_documents(v), dtype=np.float32) for k, v in texts.items()}
    return pool, {k: np.asarray(v, dtype=np.int32) for k, v in slots.items()}


def load_bank(embedder: Embedder, model_name: str, seed: int = 1001) -> VectorBank:
    """The pool's real embeddings, from the cache or embedded now (about 10 s here)."""
    tag = hashlib.sha256(f"{model_name}|{POOL_PER_KIND}|{seed}|{LIBRARIES}|{ERRORS}|{FIXES}".encode()).hexdigest()[:12]
    path = CACHE / f"pool-{tag}.npz"
    if path.exists():
        data = np.load(path)
        pool = {k: data[f"v_{k}"] for k in KINDS}
        slots = {k: data[f"s_{k}"] for k in KINDS}
    else:
        pool, slots = _embed_pool(embedder, seed)
        CACHE.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, Any] = {**{f"v_{k}": v for k, v in pool.items()}, **{f"s_{k}": v for k, v in slots.items()}}
        np.savez(path, **arrays)
    return VectorBank(pool, slots)


class DerivedEmbedder:
    """The Embedder port for filling a store: derived vectors for generated texts it was told
    about (``expect``), the real model for anything else (queries, unexpected texts)."""

    def __init__(self, real: Embedder, bank: VectorBank) -> None:
        self._real = real
        self._bank = bank
        self._pending: dict[str, np.ndarray] = {}  # the current batch's texts (a text may repeat)
        self.misses: list[str] = []  # texts the model embedded for real (a fill should have none)

    @property
    def model_name(self) -> str:
        return self._real.model_name

    @property
    def dim(self) -> int:
        return self._real.dim

    def expect(self, items: Sequence[Lesson]) -> None:
        self._pending.clear()
        for item in items:
            t = key_texts(item)
            for kind, values in t.by_kind.items():
                for text in values:
                    self._pending[text] = self._bank.derive(kind, t.library, t.problem)

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        out = []
        for text in texts:
            v = self._pending.get(text)
            if v is None:
                self.misses.append(text)
            out.append(v.tolist() if v is not None else self._real.embed_documents([text])[0])
        return out

    def embed_query(self, text: str) -> list[float]:
        return self._real.embed_query(text)


def nn_cosines(vectors: np.ndarray) -> np.ndarray:
    """Each vector's cosine to its nearest other vector."""
    sims = vectors @ vectors.T
    np.fill_diagonal(sims, -1.0)
    return sims.max(axis=1)


def check(bank: VectorBank) -> str:
    """NN-cosine histograms: real pool half B against vectors derived from half A only."""
    lines = []
    for kind in KINDS:
        n = len(bank.pool[kind])
        a, b = np.arange(0, n, 2), np.arange(1, n, 2)
        real = bank.pool[kind][b]
        derived = np.stack([bank.derive(kind, int(s[0]), int(s[1]), rows=a) for s in bank.slots[kind][b]])
        qs = (0.05, 0.25, 0.5, 0.75, 0.95)
        r, d = np.quantile(nn_cosines(real), qs), np.quantile(nn_cosines(derived), qs)
        mixed = np.quantile((derived @ real.T).max(axis=1), qs)
        lines.append(f"{kind:<13} NN cosine q05/q25/q50/q75/q95  real {np.round(r, 3).tolist()}  "
                     f"derived {np.round(d, 3).tolist()}  derived→real {np.round(mixed, 3).tolist()}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="print NN-cosine histograms, real vs derived")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from contextd_mcp.container import make_embedder
    from contextd_mcp.settings import EmbeddingSettings

    embedder = make_embedder(EmbeddingSettings())
    bank = load_bank(embedder, embedder.model_name)
    if args.check:
        print(check(bank))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
