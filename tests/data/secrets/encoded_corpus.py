"""Secrets as coding agents really store them: 20 kinds × 8 encodings.

Tool output reaches the store JSON-escaped, URL-encoded, base64'd, hex-dumped, wrapped
at a terminal's width or glued to the text before it. Each ``Sample`` is one kind in one
encoding, set in a line of realistic text; it leaks if, after scrubbing, the raw secret
can be read back by undoing that encoding (``reveal``) or any of its encoded forms
(``needles``) is still there. Shared by tests/adapters/test_encoded_secrets.py, the
per-tool test tests/e2e/test_encoded_secrets_e2e.py and bench/bench_scrubber_encodings.py.
Every token is random (seeded), shaped like the real thing; nothing here is a credential.
"""

from __future__ import annotations

import base64
import json
import re
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.data.secrets.secret_corpus import ALNUM, B64, HEX, LOWER, UPPER, URLSAFE, Gen

# Kinds known by their label or setting (no prefix of their own): glued to a word, the
# label comes along, or nothing could tell them from any other random string.
CONTEXT_KINDS = frozenset({"url-password", "password", "generic-secret"})
ENCODINGS = ("plain", "json", "url", "base64", "wrapped", "embedded", "hex", "pem")


@dataclass(frozen=True)
class Sample:
    kind: str
    encoding: str
    text: str
    secret: str  # the raw secret
    needles: tuple[str, ...]  # encoded forms of it, as they appear in ``text``

    def leaks(self, scrubbed: str) -> bool:
        return self.secret in reveal(self.encoding, scrubbed) or any(n in scrubbed for n in self.needles)


def _unwrap(text: str) -> str:
    text = re.sub(r"\"[ \t]*\+?[ \t]*\\?\r?\n[ \t]*\"", "", text)  # "abc" +\n "def"
    return re.sub(r"\\?\r?\n[ \t]*", "", text)  # newline (or `\` continuation) plus indentation


def _json_strings(text: str) -> str:
    try:
        doc = json.loads(text)
    except ValueError:
        return text
    return json.dumps(doc, ensure_ascii=False).encode().decode("unicode_escape", errors="replace")


def reveal(encoding: str, text: str) -> str:
    """``text`` with ``encoding`` undone as far as a reader could: where a leak would show."""
    if encoding == "json":
        return _json_strings(text)
    if encoding == "url":
        return urllib.parse.unquote_plus(text)
    if encoding in ("wrapped", "pem"):
        return _unwrap(text)
    return text


# ------------------------------------------------------------------------ the kinds


def _kinds(g: Gen) -> dict[str, tuple[str, str]]:
    """kind -> (secret, the line of text it sits in, with ``{t}`` for the secret)."""
    return {
        "github-token": ("ghp_" + g.s(ALNUM, 36), "export GITHUB_TOKEN={t}"),
        "github-fine-grained": ("github_pat_" + g.s(ALNUM, 22) + "_" + g.s(ALNUM, 59), "gh auth login --with-token {t}"),
        "gitlab-token": ("glpat-" + g.s(URLSAFE.replace("_", ""), 20), "remote: https://oauth2:{t}@gitlab.com/acme/api.git"),
        "slack-token": (
            f"xoxb-{g.rng.randint(10**11, 10**12)}-{g.rng.randint(10**11, 10**12)}-{g.s(ALNUM, 24)}",
            "SLACK_BOT_TOKEN={t}",
        ),
        "openai-api-key": ("sk-proj-" + g.s(ALNUM + "_-", 64), "OPENAI_API_KEY={t}"),
        "anthropic-api-key": ("sk-ant-api03-" + g.s(ALNUM + "_-", 93) + "AA", "client = Anthropic(api_key={t})"),
        "aws-access-key": ("AKIA" + g.s(UPPER + "234567", 16), "aws_access_key_id={t}"),
        "gcp-api-key": ("AIza" + g.s(ALNUM + "_-", 35), "maps.googleapis.com/maps/api/geocode/json?key={t}"),
        "stripe-key": ("sk_live_" + g.s(ALNUM, 24), "stripe.api_key = {t}"),
        "npm-token": ("npm_" + g.s(ALNUM, 36), "//registry.npmjs.org/:_authToken={t}"),
        "huggingface-token": ("hf_" + g.s(UPPER + LOWER, 34), "HF_TOKEN={t}"),
        "sendgrid-api-key": ("SG." + g.s(URLSAFE, 22) + "." + g.s(URLSAFE, 43), "SENDGRID_API_KEY={t}"),
        "databricks-token": ("dapi" + g.s(HEX, 32), "DATABRICKS_TOKEN={t}"),
        "digitalocean-token": ("dop_v1_" + g.s(HEX, 64), "doctl auth init -t {t}"),
        "groq-api-key": ("gsk_" + g.s(ALNUM, 52), "GROQ_API_KEY={t}"),
        "vault-token": ("hvs." + g.s(ALNUM + "_-", 90), "VAULT_TOKEN={t}"),
        "jwt": (g.jwt(), "Authorization: Bearer {t}"),
        "url-password": (g.s(ALNUM, 18), "DATABASE_URL=postgres://app:{t}@db.internal:5432/app"),
        "password": (g.s(ALNUM, 1) + g.s(ALNUM + "!#^*-_+?.", 15), "db_password={t}"),
        "generic-secret": (g.s(ALNUM, 32), "client_secret={t}"),
        "private-key": ("", ""),  # built in _private_key: its secret is a multi-line body
    }


# How each key type's base64 starts (its DER or OpenSSH header), and its body length.
KEY_TYPES = {
    "RSA PRIVATE KEY": ("MIIEowIBAAKCAQEA", 64 * 25 + 4),  # PKCS#1
    "PRIVATE KEY": ("MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQ", 64 * 25 + 24),  # PKCS#8
    "EC PRIVATE KEY": ("MHcCAQEEI", 160),  # SEC1, P-256
    "ENCRYPTED PRIVATE KEY": ("MIIFHDBOBgkqhkiG9w0BBQ0wQTApBgkqhkiG9w0BBQwwHAQI", 64 * 27),  # PBES2
    "OPENSSH PRIVATE KEY": ("b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW", 70 * 5 + 19),
}


def _private_key(g: Gen, label: str = "RSA PRIVATE KEY") -> tuple[str, str]:
    first, size = KEY_TYPES[label]
    body = g.pem_body(first, size)
    if label.startswith("OPENSSH"):
        body = body.replace("\n", "")
        body = "\n".join(body[i : i + 70] for i in range(0, len(body), 70))
    return body, f"-----BEGIN {label}-----\n{{t}}\n-----END {label}-----"


# -------------------------------------------------------------------- the encodings


def _plain(g: Gen, line: str, tok: str) -> tuple[str, tuple[str, ...]]:
    return f"$ cat .env\nAPP_ENV=prod\n{line.format(t=tok)}\nLOG_LEVEL=info\n", ()


def _json(g: Gen, line: str, tok: str) -> tuple[str, tuple[str, ...]]:
    # Tool output kept as a JSON document: the secret follows a `\n` escape, quotes are `\"`.
    output = f'step 3/4: loaded "config":\n{line.format(t=tok)}\ndone'
    doc = {"tool": "bash", "exit_code": 0, "stdout": output, "duration_ms": g.rng.randint(5, 900)}
    text = json.dumps(doc)
    if g.rng.random() < 0.5:  # PHP's json_encode escapes '/', Go's '&', '<', '>' and some '='
        text = text.replace("/", "\\/").replace("&", "\\u0026").replace("=", "\\u003d")
    return text, tuple(n for n in {json.dumps(tok)[1:-1]} if n != tok)


def _url(g: Gen, line: str, tok: str) -> tuple[str, tuple[str, ...]]:
    query = urllib.parse.quote(line.format(t=tok), safe="")
    return f"GET /api/v1/debug?trace=1&q={query}&page=2 HTTP/1.1\n", (urllib.parse.quote(tok, safe=""),)


def _base64(g: Gen, line: str, tok: str) -> tuple[str, tuple[str, ...]]:
    blob = base64.b64encode(f"{line.format(t=tok)}\n".encode()).decode()
    if g.rng.random() < 0.5:
        blob = blob.replace("+", "-").replace("/", "_").rstrip("=")  # base64url, as in k8s/JWT-ish tooling
        return f'kubectl get secret app -o json | jq .data\n{{"config": "{blob}"}}\n', (blob,)
    return f"apiVersion: v1\nkind: Secret\ndata:\n  config: {blob}\n", (blob,)


def _wrapped(g: Gen, line: str, tok: str) -> tuple[str, tuple[str, ...]]:
    head, tail = line.format(t="\0").split("\0")
    cut = len(tok) // 2
    style = g.rng.randrange(3)
    if style == 0:  # a terminal or a log viewer wrapped it, with indentation
        text = f"  {head}{tok[:cut]}\n      {tok[cut:]}{tail}\n"
    elif style == 1:  # a shell line continuation
        text = f"docker run --rm -e {head}{tok[:cut]}\\\n    {tok[cut:]}{tail} app\n"
    else:  # string concatenation across lines
        text = f'cfg = ("{head}{tok[:cut]}" +\n       "{tok[cut:]}{tail}")\n'
    return text, (tok[:cut], tok[cut:])  # half a token is half its secret: both halves must go


def _embedded(g: Gen, line: str, tok: str) -> tuple[str, tuple[str, ...]]:
    glue = g.pick(["id=abc", "x9", "%3D", "token=", "ref=", "\\n"])
    return f"debug: request {glue}{tok} rejected (401)\n", ()


def _hex(g: Gen, line: str, tok: str) -> tuple[str, tuple[str, ...]]:
    blob = f"{line.format(t=tok)}\n".encode().hex()
    return f"config blob (hex): {blob}\n", (blob,)


def _pem(g: Gen, line: str, tok: str) -> tuple[str, tuple[str, ...]]:
    # A key pasted without its armour (copied from the middle of a file, or a secret manager).
    body = tok if "\n" in tok else g.pem_body("MIIEowIBAAKCAQEA", 64 * 20 + 24)
    lines = tuple(ln for ln in body.splitlines() if len(ln) >= 16)
    return f"key material follows:\n{body}\nend of key material\n", lines


ENCODERS: dict[str, Callable[[Gen, str, str], tuple[str, tuple[str, ...]]]] = {
    "plain": _plain,
    "json": _json,
    "url": _url,
    "base64": _base64,
    "wrapped": _wrapped,
    "embedded": _embedded,
    "hex": _hex,
    "pem": _pem,
}


def samples(seed: int = 20261204) -> list[Sample]:
    """Every kind in every encoding. The ``pem`` encoding is the private key's own (a body
    without its BEGIN line); for the other kinds it has no natural form and is skipped."""
    g = Gen(seed)
    out: list[Sample] = []
    # A fresh secret for every kind in every encoding: on disk, a leak is then one sample's own.
    for encoding, encode in ENCODERS.items():
        for kind, (secret, line) in _kinds(g).items():
            if kind == "private-key":
                secret, line = _private_key(g)
                if encoding in ("embedded", "wrapped"):
                    continue  # a PEM body is already many wrapped lines; it has no glued-on form
            elif encoding == "pem":
                continue
            if encoding == "embedded" and kind in CONTEXT_KINDS:
                text, needles = encode(g, "{t}", line.format(t=secret))  # the label travels with it
            else:
                text, needles = encode(g, line, secret)
            if kind == "private-key":
                needles = (*needles, *(ln for ln in secret.splitlines()))
            out.append(Sample(kind, encoding, text, secret, needles))
    for label in KEY_TYPES:  # every key type pasted without its armour, the case the pem encoding is about
        body, _ = _private_key(g, label)
        text, needles = _pem(g, "", body)
        out.append(Sample(f"private-key ({label.lower()})", "pem", text, body, needles))
    return out


# ----------------------------------------------------------------------- evaluation


@dataclass
class Recall:
    by_kind: dict[str, list[int]] = field(default_factory=dict)  # kind -> [caught, total]
    by_encoding: dict[str, list[int]] = field(default_factory=dict)
    misses: list[Sample] = field(default_factory=list)

    @property
    def total(self) -> float:
        caught = sum(c for c, _ in self.by_encoding.values())
        return caught / max(1, sum(t for _, t in self.by_encoding.values()))

    def encoding(self, name: str) -> float:
        caught, total = self.by_encoding[name]
        return caught / total


def recall(scrub: Callable[[str], str], corpus: list[Sample]) -> Recall:
    r = Recall()
    for sample in corpus:
        caught = not sample.leaks(scrub(sample.text))
        for table, key in ((r.by_kind, sample.kind), (r.by_encoding, sample.encoding)):
            cell = table.setdefault(key, [0, 0])
            cell[0] += caught
            cell[1] += 1
        if not caught:
            r.misses.append(sample)
    return r


# ------------------------------------------------------------ false-positive texts

ROOT = Path(__file__).resolve().parents[3]


def repository_files() -> list[tuple[str, str]]:
    """(path, text) of this repository's src/ and tests/, minus the secret corpora and the
    scrubber tests (their job is to hold secrets)."""
    skip = (
        "tests/data/secrets/",
        "tests/adapters/test_secret",
        "tests/adapters/test_encoded",
        "tests/mcp/test_scrubbing",
        "tests/e2e/test_scrubbing_e2e",
        "tests/e2e/test_encoded_secrets_e2e",
        # These plant one fake token each to check that what they store is scrubbed.
        "tests/mcp/test_audit.py",
        "tests/services/test_checkpoints.py",
        "tests/services/test_distill.py",
        "tests/services/test_sessions.py",
        # These put a password in a remote URL to check that status never shows it.
        "tests/e2e/test_tenant_identity.py",
        "tests/test_scope_resolver.py",
    )
    out = []
    for base in ("src", "tests"):
        for path in sorted((ROOT / base).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if not rel.startswith(skip):
                out.append((rel, path.read_text(encoding="utf-8")))
    return out


def package_files(limit_chars: int = 3_000_000) -> list[tuple[str, str]]:
    """(path, text) of installed packages' Python sources (site-packages), real third-party
    code; sorted, so every run reads the same files."""
    import sysconfig

    site = Path(sysconfig.get_paths()["purelib"])
    out: list[tuple[str, str]] = []
    total = 0
    for pkg in ("mcp", "pydantic", "httpx", "anyio", "starlette", "click", "yaml", "jinja2", "idna", "certifi"):
        for path in sorted((site / pkg).rglob("*.py")) if (site / pkg).is_dir() else []:
            if "test" in path.name:
                continue
            try:
                text = path.read_text(encoding="utf-8")
            except (UnicodeDecodeError, OSError):
                continue
            out.append((path.relative_to(site).as_posix(), text))
            total += len(text)
            if total >= limit_chars:
                return out
    return out


def log_lines(n: int = 6000, seed: int = 5) -> list[str]:
    """Ordinary service, CI and HTTP logs, JSON log records and escaped tool output, none
    of which holds a secret: request ids, hashes, base64 of harmless text, URLs with queries."""
    g = Gen(seed)
    words = "user order cache worker queue upload invoice session report build test deploy".split()
    out: list[str] = []
    for i in range(n):
        ts = f"2026-12-04T{g.rng.randint(0, 23):02}:{g.rng.randint(0, 59):02}:{g.rng.randint(0, 59):02}.{i % 1000:03}Z"
        w = g.pick(words)
        style = i % 10
        if style == 0:
            out.append(f'{ts} INFO  {w}-svc request_id={g.uuid()} path=/api/v2/{w}s/{g.rng.randint(1, 99999)} status=200 ms={g.rng.randint(1, 900)}')
        elif style == 1:
            rec = {"ts": ts, "level": "info", "msg": f"{w} done\nnext: {g.pick(words)}", "trace": g.s(HEX, 32), "span": g.s(HEX, 16)}
            out.append(json.dumps(rec))
        elif style == 2:
            out.append(f"{ts} DEBUG GET /search?q={urllib.parse.quote(w + ' ' + g.pick(words) + '=1&x')}&sort=desc%2Cdate HTTP/1.1 200")
        elif style == 3:
            out.append(f"commit {g.s(HEX, 40)}\nAuthor: Dev {w.title()} <dev@example.org>\n\n    Fix {w} retries\n")
        elif style == 4:
            note = base64.b64encode(f"{w} report for {g.uuid()} generated".encode()).decode()
            out.append(f"{ts} INFO attachment name={w}.txt content={note}")
        elif style == 5:
            out.append(f"  File \"/usr/lib/python3.12/site-packages/{w}/core.py\", line {g.rng.randint(1, 999)}, in run\n    return self._{w}(item)")
        elif style == 6:
            out.append(f"{ts} WARN sha256:{g.s(HEX, 64)} layer {w} pulled ({g.rng.randint(1, 400)} MB)")
        elif style == 7:
            out.append(f'{{"stdout": "collected 42 items\\n\\ntests/test_{w}.py ........\\n{g.rng.randint(1, 99)} passed in 0.4s\\n", "exit_code": 0}}')
        elif style == 8:
            out.append(f"{ts} INFO etag=\"{g.s(B64, 27)}=\" cache-key={w}:{g.s(HEX, 12)} ttl=300")
        else:
            out.append(f"{ts} ERROR {w} failed: ConnectionResetError(104, 'Connection reset by peer') retry={g.rng.randint(1, 5)}")
    return out
