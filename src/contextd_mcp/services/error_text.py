"""Error text: strip what varies between occurrences of one failure, keep its signature.

The same failure reappears with other paths, line numbers, addresses, pids, temp names,
versions and timestamps, while what decides which fix applies is exact: an error class,
an errno or code (``E0382``, ``ERESOLVE``, ``ECONNREFUSED``, ``SQLSTATE 23505``), a package
or module name. ``normalise`` keeps the second and replaces the first with placeholders;
``sparse_vector`` turns the result into hashed lexical terms for the store's sparse index
(whose engine applies IDF, so boilerplate like "Traceback" or "npm ERR!" weighs little).
"""

from __future__ import annotations

import math
import re
import zlib

# Bounded input: regexes here are linear, but a 1 MB log is not an error message.
MAX_CHARS = 20_000
# The embedding model reads the first ~250 tokens; measured, 400 chars lose no recall and embed 2x faster than 900.
DENSE_MAX_CHARS = 400

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# CI runners prefix every line with a timestamp (GitHub Actions: 2024-12-18T03:06:34.5690000Z).
_LINE_TS = re.compile(r"^\s*\[?\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?Z?\]?\s?", re.M)
_TIMESTAMP = re.compile(
    r"\b\d{4}[-/]\d{2}[-/]\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2})?(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2}| ?UTC)?)?\b"
    r"|\b\d{2}:\d{2}:\d{2}(?:[.,]\d+)?\b"
    r"|\b(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun),? (?=[\d<])"
    r"|\b(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) +\d{1,2}\b"
)
_UUID = re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b")
# 0x plus one or two digits is a byte or a code (0xff: a UTF-16 BOM, 0x8b: gzip), not an address.
_HEX = re.compile(r"\b0x[0-9a-fA-F]{3,}\b|\b(?=[0-9a-fA-F]*\d)(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{8,}\b")
_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
# Loopback and wildcard addresses tell IPv4 from IPv6 and local from remote: they become words.
_SPECIAL_IPS = (
    (re.compile(r"\b127\.0\.0\.1\b"), "ipv4-loopback"),
    (re.compile(r"\b0\.0\.0\.0\b"), "ipv4-any"),
    (re.compile(r"\[::1\]|(?<![\w:\[])::1(?![\w:\]])|(?<![\w:\[])::1(?=:\d)"), "ipv6-loopback"),
)
_IPV4 = re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}\b")
_IPV6 = re.compile(r"(?<![\w:])\[?(?:[0-9a-fA-F]{0,4}:){2,7}[0-9a-fA-F]{1,4}\]?(?=:\d|\b|$)")
# A port on a local or redacted address names the service (5432 Postgres, 6379 Redis): keep it
# apart from the address so the file:line stripping below leaves it alone.
_HOST_PORT = re.compile(r"(<ip>|ipv4-loopback|ipv4-any|ipv6-loopback|localhost):(\d{2,5})\b")
_PORT_FIELD = re.compile(r"\bport[=:]? ?(\d{2,5})\b")
_URL = re.compile(r"\b(?:https?|ssh|git|ftp|wss?)://(?:[^\s/@'\"]+@)?([^\s/:'\"<>)]+)[^\s'\"<>)]*")
_SCP_URL = re.compile(r"\b[\w.-]+@([\w-]+(?:\.[\w-]+)+):[\w./-]+")
# Package roots inside a path name the package, which is signal: keep it.
_PKG_ROOT = re.compile(r"(?:site-packages|dist-packages|node_modules|pkg/mod|\.cargo/registry/src/[^/]+|gems)/(@?[\w.-]+)")
_PATH = re.compile(r"(?:[A-Za-z]:\\|(?<![\w.])~?/|(?<![\w.])\.{1,2}/)(?:[\w.@+~-]+[/\\])*[\w.@+~-]*|(?:[\w.@+-]+/){2,}[\w.@+-]*")
_LOCATION = re.compile(r"(?<=\w)(?::\d+){1,2}\b|\bline \d+|\(line \d+\)|\bcharacter \d+|\bposition \d+|\bcolumn \d+")
_PID = re.compile(r"\b(?:pid|PID|process|thread|tid)[ =:]+\d+|\[\d{2,7}\]|\bgoroutine \d+")
_VERSION = re.compile(r"\bv?\d+\.\d+(?:\.\d+)+(?:[-+][\w.]+)?\b")
# Temp names, and generated suffixes such as a Kubernetes pod's (api-7d9f8b6c4-x2k9p).
_TEMP = re.compile(r"\b(?:tmp|temp|pip-[\w-]+-)[\w]{4,}\b")
_POD_SUFFIX = re.compile(r"(?:-<hex>|-(?=[a-z0-9]*\d)[a-z0-9]{9,10})-[a-z0-9]{5}\b")
_LONG_NUMBER = re.compile(r"(?<![\w.:])\d{4,}(?![\w.])")
# A number right after one of these is a code (SQLSTATE 23505, errno 10054), not a counter.
_CODE_BEFORE = re.compile(r"(?:sqlstate|errno|code|status|error|http|ora-|exit)\W{0,3}$", re.I)
_DURATION = re.compile(r"\b\d+(?:\.\d+)?\s?(?:ms|s|sec|seconds|min|minutes)\b")
# CI and build-tool trailers say only that something failed; the failure is elsewhere.
_TRAILER = re.compile(
    r"^(?:Error: Process completed with exit code \d+\.?|ERROR: Job failed: exit code \d+|make(?:\[\d+\])?: \*\*\* .*Error \d+"
    r"|npm (?:ERR!|error) A complete log of this run.*|npm (?:ERR!|error) +(?:<path>|[\w.-]+\.log)"
    r"|.* exited with code \d+|exit status \d+|\+ set -[euxo ]+pipefail|error Command failed with exit code \d+\.?"
    r"|info Visit https://yarnpkg\.com.*)$",
    re.M,
)
_RULER = re.compile(r"^[\s=_\-!*#~^|.]{4,}$|^\s*\d*\s*\|\s*\^*\s*$", re.M)
_SPACES = re.compile(r"[ \t]+")

_ERROR_LINE = re.compile(
    r"error|exception|fail|fatal|panic|denied|refused|not found|no such|cannot|can't|could not|unable|"
    r"invalid|missing|undefined|unresolved|conflict|timeout|timed out|rejected|abort|killed|segmentation|"
    r"traceback|warning|\bE\d{3,4}\b|\bE[A-Z]{3,}\b|errno|sqlstate|exit (?:code|status)",
    re.I,
)


def _replace_path(match: re.Match[str]) -> str:
    path = match.group(0)
    if "/" not in path.strip("/") and "\\" not in path and not path.startswith(("/", "~", "./", "../")):
        return path
    pkg = _PKG_ROOT.search(path)
    base = re.split(r"[/\\]", path.rstrip("/\\"))[-1]
    parts = [p for p in (pkg.group(1) if pkg else "", base) if p]
    return " ".join(dict.fromkeys(parts)) or "<path>"


def normalise(text: str) -> str:
    """The failure's signature: volatile parts become placeholders, repeated lines collapse."""
    text = _ANSI.sub("", text[:MAX_CHARS]).replace("\r\n", "\n")
    text = _LINE_TS.sub("", text)
    text = _TIMESTAMP.sub("<ts>", text)
    text = _UUID.sub("<uuid>", text)
    text = _URL.sub(lambda m: m.group(1), text)
    text = _SCP_URL.sub(lambda m: m.group(1), text)
    text = _EMAIL.sub("<email>", text)
    for pattern, word in _SPECIAL_IPS:
        text = pattern.sub(word, text)
    text = _HEX.sub("<hex>", text)
    text = _IPV4.sub("<ip>", text)
    text = _IPV6.sub("<ip>", text)
    text = _HOST_PORT.sub(r"\1 :\2", text)
    text = _PORT_FIELD.sub(r"port :\1", text)
    text = _PATH.sub(_replace_path, text)
    text = _LOCATION.sub("", text)
    text = _PID.sub(lambda m: re.sub(r"\d+", "<n>", m.group(0)), text)
    text = _VERSION.sub("<ver>", text)
    text = _POD_SUFFIX.sub("", text)
    text = _TEMP.sub("<tmp>", text)
    text = _DURATION.sub("<dur>", text)
    text = _LONG_NUMBER.sub(lambda m: m.group(0) if _CODE_BEFORE.search(m.string, max(0, m.start() - 12), m.start()) else "<n>", text)
    text = _TRAILER.sub("", text)
    text = _RULER.sub("", text)
    lines: list[str] = []
    seen: set[str] = set()
    for line in text.split("\n"):
        line = _SPACES.sub(" ", line).strip()
        if line and line not in seen:
            seen.add(line)
            lines.append(line)
    return "\n".join(lines)


# Error-looking lines that every failure of a kind prints alike: they name no cause.
_BOILERPLATE_LINE = re.compile(r"^(?:Traceback \(most recent call last\):|WARN(?:ING)?\b.*|FAILED \S+|\S*Error: Process completed.*)$")


def decisive_lines(normalised: str) -> list[str]:
    """The lines that name the failure (class, code, message), without the log around them."""
    return [
        line for line in normalised.split("\n") if _ERROR_LINE.search(line) and not _BOILERPLATE_LINE.match(line)
    ]


def dense_text(normalised: str, max_chars: int = DENSE_MAX_CHARS) -> str:
    """What the embedding model reads: error-looking lines first, since it reads ~250 tokens
    and a traceback's decisive line is often its last."""
    lines = normalised.split("\n")
    decisive = [line for line in lines if _ERROR_LINE.search(line)]
    rest = [line for line in lines if not _ERROR_LINE.search(line)]
    out: list[str] = []
    size = 0
    for line in decisive[::-1][:1] + decisive[:-1] + rest:
        if size + len(line) > max_chars:
            break
        out.append(line)
        size += len(line) + 1
    return "\n".join(out) or normalised[:max_chars]


_TOKEN = re.compile(r"[A-Za-z0-9_]+(?:[.:/@-][A-Za-z0-9_]+)*")
_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")
_STOP = frozenset(
    "a an and are as at be by for from has have in is it its of on or that the this to was were with "
    "you your can could will should may please see use try tmp ts hex uuid ip ver dur path email n".split()
)


def _parts(token: str) -> list[str]:
    pieces = re.split(r"[.:/@_-]+", token)
    out: list[str] = []
    for piece in pieces:
        out.append(piece.lower())
        camel = _CAMEL.findall(piece)
        if len(camel) > 1:
            out.extend(c.lower() for c in camel)
    return out


def _line_terms(line: str, weight: float, counts: dict[str, float]) -> None:
    previous = ""
    for match in _TOKEN.finditer(line):
        token = match.group(0)
        parts = _parts(token)
        if len(parts) > 1:
            counts["=" + token.lower()] = counts.get("=" + token.lower(), 0.0) + weight
        for part in parts:
            if len(part) < 2 or part in _STOP:
                continue
            counts[part] = counts.get(part, 0.0) + weight
        word = parts[-1]
        if len(word) < 2 or word in _STOP:
            continue
        if previous:
            pair = previous + "+" + word
            counts[pair] = counts.get(pair, 0.0) + weight
        previous = word


def terms(normalised: str) -> dict[str, float]:
    """Weighted lexical terms: whole identifiers (dotted names, codes, package names) and
    their parts, plus adjacent-word pairs for the message skeleton ("module+named")."""
    counts: dict[str, float] = {}
    for line in normalised.split("\n"):
        _line_terms(line, 1.0, counts)
    return counts


def term_index(term: str) -> int:
    return zlib.crc32(term.encode())


# English function words (pronouns, determiners, auxiliaries, conjunctions, the commonest
# prepositions), left out of a query's single-word terms (``sparse_vector(drop=...)``). Each is in
# a large share of all stored texts, so its posting list is long while its IDF leaves it little
# weight: at 100k memories "we" was in a fifth of the 500k key points, and without these words a
# key search's lexical half took 1.85 -> 1.25 ms (BENCHMARKS.md, "Session 15"). Negations,
# particles and adverbs of time stay ("not", "up", "after": they carry meaning in an error, and
# dropping them too lost ranks on the dev split). Stored vectors keep every word, so their unit
# length and every stored score stay as they were; a pair holding one stays in the query.
FUNCTION_WORDS = frozenset(
    """i me my myself we our ours ourselves you your yours he him his she her they them their it its
    what which who whom whose this that these those am is are was were be been being have has had
    having do does did doing a an the and but if or because as until while of at by for with about
    against between into through during to from in on""".split()
)


def sparse_vector(normalised: str, unit: bool = False, drop: frozenset[str] = frozenset()) -> dict[int, float]:
    """Hashed terms with a saturating term frequency (repeats add little, as in BM25).

    ``unit=True`` (stored records) scales the vector to length 1: the engine scores a dot
    product, which would otherwise favour long logs that happen to share boilerplate.
    ``drop``: single-word terms a query leaves out (``FUNCTION_WORDS``).
    """
    vector: dict[int, float] = {}
    for term, count in terms(normalised).items():
        if term in drop:
            continue
        index = term_index(term)
        vector[index] = vector.get(index, 0.0) + 1.0 + math.log(count)
    if unit and vector:
        norm = math.sqrt(sum(v * v for v in vector.values()))
        vector = {i: v / norm for i, v in vector.items()}
    return vector


# Keyword rules for a remediation's category when the caller gives none. Most specific first:
# on equal counts the earlier category wins (a failing pytest run that hits Postgres is a test).
_CATEGORY_RULES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pattern, re.I))
    for name, pattern in (
        ("test", r"\bpytest\b|\bjest\b|\bvitest\b|\bmocha\b|\bunittest\b|\bgo test\b|\bfixture|\bconftest\b"
                 r"|\bAssertionError\b|\btest suites?\b|\btests? failed\b|\bFAIL\b|\bDATA RACE\b|\bsnapshot"),
        ("database", r"postgres|\bpsql\b|psycopg|sqlstate|mysql|mariadb|sqlite|mongo|\bredis\b|sqlalchemy|prisma"
                     r"|\brelation \S+ does not exist|deadlock detected|duplicate key|constraint|\bmigrat"
                     r"|\btransaction\b|\bORA-\d+|\bdatabase\b|\bcolumn \S+ does not exist|too many clients|typeorm|sequelize"),
        ("network", r"ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENOTFOUND|EAI_AGAIN|getaddrinfo|\bdns\b|name resolution"
                    r"|resolve host|connection refused|timed out|\btimeout\b|\bssl\b|\btls\b|certificate|\bx509\b"
                    r"|\bcors\b|\bproxy\b|\b50[234]\b|socket hang up|host key|unreachable|handshake|rate limit|toomanyrequests"),
        ("dependency", r"ModuleNotFoundError|No module named|Cannot find module|ERESOLVE|peer dep|resolve dependenc"
                       r"|version solving failed|ResolutionImpossible|conflicting dependencies|lock ?file|package-lock"
                       r"|yarn\.lock|poetry\.lock|go\.sum|requirements\.txt|pip install|npm (?:install|ci)\b"
                       r"|no matching distribution|not available from current channels|unable to locate package"
                       r"|\bcrates?\b|incompatible|requires[ -]python|\bengine\b|\bunmet\b|no required module provides"),
        ("build", r"\bcompil|\blinker\b|undefined reference|\bld:|\bcmake\b|\bmake\b|\bgcc\b|\bg\+\+|\bclang\b|rustc"
                  r"|error\[E\d+\]|\bE0\d{3}\b|\bTS\d{4}\b|\btsc\b|webpack|\bvite\b|babel|build failed|docker build"
                  r"|dockerfile|setup\.py|\bwheel\b|\.h: No such file|\bcgo\b|go build|cannot find -l"
                  r"|declared and not used|\bundefined: |import cycle"),
        ("config", r"environment variable|\benv\b|\.env\b|\bconfig|settings|permission denied|EACCES|not configured"
                   r"|\byaml\b|\btoml\b|kubeconfig|credentials|\bsecret\b|\bgit\b|\bfatal:|docker daemon|systemd"
                   r"|\bhelm\b|terraform|kubernetes|kubectl|\bpod\b|pg_hba|no space left|docker login|\bapt\b|\bGPG\b"
                   r"|github actions|interpreter|\bquota\b"),
        ("runtime", r"Traceback|Exception\b|TypeError|ValueError|KeyError|AttributeError|IndexError|NullPointer"
                    r"|undefined is not|segmentation fault|\bpanic:|goroutine|nil pointer|RuntimeError|out of memory"
                    r"|\bOOM\b|stack overflow|\bdeadlock\b|unhandled|Uncaught|recursion|\b[A-Z]\w*(?:Error|Warning)\b"
                    r"|\bErrno\b|\bpanic|address already in use|exec format error|shared librar|GLIBC|heap|OOMKilled"),
    )
)


def infer_category(text: str) -> str:
    """The category with the most keyword hits, ``unknown`` when none hits."""
    text = text[:MAX_CHARS]
    best, best_hits = "unknown", 0
    for name, pattern in _CATEGORY_RULES:
        hits = len(pattern.findall(text))
        if hits > best_hits:
            best, best_hits = name, hits
    return best
