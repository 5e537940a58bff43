"""Writes dev.json and heldout.json from families.py (deterministic: same input, same files).

    .venv/bin/python -m bench.data.remediation_eval.generate

Each cause becomes one stored fix (its error as first seen, wrapped in one program's output)
and one or two re-occurrences: the same failure seen again, with other paths, names, ids,
line numbers, addresses, timestamps and surrounding log lines, in another wrapper (a CI log,
a test runner, a service log). Its family siblings are the near-misses stored beside it.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any

from bench.data.remediation_eval.families import FAMILIES

HERE = Path(__file__).parent
SEED = 15
HELD_OUT_FIXES = (60, 70)
# How often a re-occurrence shows up in the environment a near-miss was recorded in.
SIBLING_ENVIRONMENT = 0.7  # families are split whole; held-out gets this many fixes

ORGS = ["acme", "hooli", "initech", "globex", "umbrella", "stark", "wayne", "wonka", "tyrell", "cyberdyne"]
SERVICES = ["billing", "ledger", "orders", "search", "notifier", "gateway", "reports", "ingest", "authsvc", "crm", "catalog", "payments"]
ROOTS = ["/srv/{svc}", "/opt/{org}/{svc}", "/home/dev/src/{svc}", "/builds/{org}/{svc}", "/Users/sam/code/{svc}", "/workspace/{svc}", "/app"]
HOMES = ["/home/dev", "/Users/sam", "/root", "/home/runner"]
FILES = ["handlers", "client", "store", "sync", "export", "routes", "models", "jobs", "views", "parser"]
COMPONENTS = ["Header", "OrderList", "Checkout", "Sidebar", "UserMenu", "Invoice"]
TYPES = ["Order", "Invoice", "Customer", "Event", "Payload"]
VARS = ["items", "orders", "buf", "names", "rows", "config"]
TABLES = ["orders", "invoices", "customers", "events", "payments"]
PKGS = ["left-pad-ng", "chalk-pro", "tiny-invariant", "zod-form", "date-fns-tz", "quick-lru"]
BRANCHES = ["feature/export", "fix/login", "chore/deps", "feat/billing-v2", "hotfix/timeout"]
HOSTS = ["example.com", "corp.internal", "shop.io", "acme.dev", "staging.net"]
REGISTRIES = ["ghcr.io/{org}", "registry.gitlab.com/{org}", "{n}.dkr.ecr.eu-west-1.amazonaws.com", "docker.io/{org}"]
NOISE = [
    "INFO  starting {svc} (pid {pid})",
    "DEBUG loaded configuration from {root}/config/{env}.yaml",
    "WARN  option 'legacy_mode' is deprecated and ignored",
    "INFO  listening on http://0.0.0.0:{port}",
    "INFO  connected to message broker at amqp://{host}:5672",
    "DEBUG feature flags: new_checkout=on, async_export=off",
    "INFO  migrations up to date ({n} applied)",
    "WARN  slow request GET /api/v1/{file} took {n}ms",
]


def values(rng: random.Random) -> dict[str, str]:
    org, svc = rng.choice(ORGS), rng.choice(SERVICES)
    n = str(rng.randint(12, 980))
    v = {
        "org": org, "svc": svc, "n": n, "c": str(rng.randint(3, 60)), "pid": str(rng.randint(1000, 65000)),
        "file": rng.choice(FILES), "Comp": rng.choice(COMPONENTS), "Type": rng.choice(TYPES), "var": rng.choice(VARS),
        "table": rng.choice(TABLES), "pkg": rng.choice(PKGS), "branch": rng.choice(BRANCHES),
        "host": rng.choice(HOSTS), "home": rng.choice(HOMES), "env": rng.choice(["prod", "staging", "dev"]),
        "port": str(rng.choice([8000, 8080, 3000, 5000, 9000])),
        "id": "".join(rng.choice("0123456789abcdef") for _ in range(12)),
        "uuid": "-".join("".join(rng.choice("0123456789abcdef") for _ in range(k)) for k in (8, 4, 4, 4, 12)),
        "ip": f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
        "email": f"{rng.choice(['ana', 'bo', 'chen', 'dee'])}{rng.randint(1, 99)}@{rng.choice(HOSTS)}",
        "ver": f"{rng.randint(1, 4)}.{rng.randint(0, 30)}.{rng.randint(0, 9)}",
        "module": f"github.com/{org}/{svc}",
    }
    v["root"] = rng.choice(ROOTS).format(**v)
    v["registry"] = rng.choice(REGISTRIES).format(**v)
    return v


_SLOT = re.compile(r"\{(\w+)\}")


def fill(template: str, v: dict[str, str]) -> str:
    """Known ``{slot}``s take this occurrence's values; ``{{``/``}}`` are literal braces."""
    text = _SLOT.sub(lambda m: v.get(m.group(1), m.group(0)), template)
    return text.replace("{{", "{").replace("}}", "}")


def wrap(ecosystem: str, error: str, command: str, v: dict[str, str], style: int, rng: random.Random) -> str:
    """One occurrence's output around the error lines; ``style`` picks the wrapper."""
    noise = [fill(line, v) for line in rng.sample(NOISE, 2)]
    ts = f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}.{rng.randint(0, 9999999):07d}Z"
    if style == 1:  # a CI log: the command, timestamps on every line, the runner's trailer
        lines = [f"$ {command}", *noise, *error.split("\n"), "Error: Process completed with exit code 1."]
        return "\n".join(f"{ts} {line}" for line in lines)
    if style == 2:  # embedded in a service's log, or a test runner's report
        if ecosystem == "py" and rng.random() < 0.5:
            head = f"____________________ test_{v['file']}_{v['var']} ____________________"
            body = [f"E   {line}" for line in error.split("\n")]
            return "\n".join([head, *body, f"tests/test_{v['file']}.py:{v['n']}: {error.split(':')[0].split()[-1]}",
                              "=========================== short test summary info ============================",
                              f"FAILED tests/test_{v['file']}.py::test_{v['file']}_{v['var']}"])
        return "\n".join([*noise, *error.split("\n"), f"INFO  shutting down {v['svc']} (pid {v['pid']})"])
    head = {
        "py": ["Traceback (most recent call last):", f"  File \"{v['root']}/{v['svc']}/{v['file']}.py\", line {v['n']}, in run"],
        "node": [f"> {v['svc']}@{v['ver']} start", f"> {command}", ""],
        "rust": [f"   Compiling {v['svc']} v{v['ver']} ({v['root']})"],
        "go": [f"go: downloading github.com/{v['org']}/kit v{v['ver']}"],
        "java": [f"{ts} INFO  [main] c.{v['org']}.{v['svc']}.Application : Starting Application v{v['ver']}"],
        "shell": [f"$ {command}"],
        "cmd": [f"`{command}` failed with:"],  # as an agent (or the transcript sink) writes it
    }[ecosystem]
    tail = {
        "py": [], "node": ["", "Node.js v20.11.1"], "rust": [f"error: could not compile `{v['svc']}` due to 1 previous error"],
        "go": ["exit status 2"], "java": [f"\tat com.{v['org']}.{v['svc']}.Application.main(Application.java:{v['n']})"], "shell": [],
        "cmd": [],
    }[ecosystem]
    return "\n".join([*head, *error.split("\n"), *tail]).strip("\n")


def build() -> tuple[dict[str, Any], dict[str, Any]]:
    rng = random.Random(SEED)
    order = list(FAMILIES)
    rng.shuffle(order)
    held: list[str] = []
    held_fixes = 0
    for family, _, _, causes in order:
        if held_fixes + len(causes) <= HELD_OUT_FIXES[1]:
            held.append(family)
            held_fixes += len(causes)
        if held_fixes >= HELD_OUT_FIXES[0]:
            break
    sets: dict[str, dict[str, Any]] = {"dev": {"remediations": [], "queries": []}, "heldout": {"remediations": [], "queries": []}}
    for family, ecosystem, category, causes in FAMILIES:
        target = sets["heldout" if family in held else "dev"]
        # Where each fix was first seen: its project's values, its program's output style.
        seen = [(values(rng), rng.choice((0, 1, 2)), rng.randrange(1 << 30)) for _ in causes]
        for i, (title, error, fix, root_cause, command) in enumerate(causes):
            key = f"{family}/{i}"
            v, style, noise = seen[i]
            problem = wrap(ecosystem, fill(error, v), fill(command, v), v, style, random.Random(noise))
            target["remediations"].append({
                "key": key, "family": family, "title": title, "problem": problem, "solution": fill(fix, v),
                "root_cause": root_cause, "category": category, "tags": [ecosystem],
            })
            for _ in range(1 + (rng.random() < 0.6)):
                siblings = [j for j in range(len(causes)) if j != i]
                if rng.random() < SIBLING_ENVIRONMENT and siblings:
                    # The error comes back in the project (paths, names, log lines, output
                    # style) where a near-miss was recorded, not where its own fix was.
                    w, q_style, q_noise = seen[rng.choice(siblings)]
                    q_style = q_style or 1  # the bare style-0 output would repeat the stored text
                else:
                    w, q_style, q_noise = values(rng), rng.choice((1, 2)), rng.randrange(1 << 30)
                query: dict[str, Any] = {
                    "error": wrap(ecosystem, fill(error, w), fill(command, w), w, q_style, random.Random(q_noise)),
                    "relevant": key, "family": family,
                }
                if ecosystem == "cmd" or rng.random() < 0.3:  # what the agent says it was doing
                    query["context"] = f"running `{fill(command, w)}`"
                target["queries"].append(query)
    for name in ("dev", "heldout"):
        sets[name]["families"] = sorted({r["family"] for r in sets[name]["remediations"]})
    return sets["dev"], sets["heldout"]


def main() -> None:
    dev, heldout = build()
    for name, data in (("dev", dev), ("heldout", heldout)):
        (HERE / f"{name}.json").write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
        print(f"{name}: {len(data['remediations'])} fixes, {len(data['queries'])} re-occurrences, {len(data['families'])} families")


if __name__ == "__main__":
    main()
