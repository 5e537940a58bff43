"""What a secret looks like: the detectors behind ``RegexScrubber``.

Detectors run in priority order; when two findings overlap, the earlier detector wins.
That order is: structured blocks (PEM private keys, GCP service-account JSON), then
vendor tokens with a fixed prefix (``ghp_``, ``AKIA``, ``xoxb-`` ...), then context
rules (URL passwords, ``Authorization`` headers, ``password = "..."`` assignments).

Speed matters: the scrubber sees every stored and every returned text. Python's ``re``
only searches quickly when a pattern starts with a literal (it then skips ahead to
that literal); a leading ``\\b``, ``(?i)``, character class or alternation makes it
try a match at every character, 20-50x slower. So every pattern here starts with a
literal, case-insensitive rules run on a lower-cased copy of the text (same length,
same offsets), word boundaries are checked in Python after a match, and a token whose
literal sits in its middle (``123456789:AA...``) is searched from that literal.

Work per match is bounded (capped quantifiers, possessive where backtracking could
not succeed anyway), so hostile input such as ``"eyJ-" * 10**6`` stays linear.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
import string
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

Finding = tuple[int, int, str]
"""(start, end, kind): ``text[start:end]`` is a secret of that kind."""

MARKER_PREFIX = "[REDACTED:"


class TextView:
    """The text plus a lazily built lower-cased copy with the same offsets."""

    __slots__ = ("_lower", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._lower: str | None = None

    @property
    def lower(self) -> str:
        if self._lower is None:
            text = self.text
            if text.isascii():  # O(1) in CPython
                self._lower = text.lower()
            else:
                # str.lower() may lengthen non-ASCII text ('İ' -> 'i̇'), which would shift
                # every offset after it; keywords are ASCII, so '?' loses nothing.
                self._lower = text.encode("ascii", "replace").decode("ascii").lower()
        return self._lower


class Detector(Protocol):
    def find(self, view: TextView) -> Iterator[Finding]: ...


# --------------------------------------------------------------------------- helpers


def entropy(s: str) -> float:
    """Shannon entropy in bits per character."""
    n = len(s)
    if n == 0:
        return 0.0
    return -sum(c / n * math.log2(c / n) for c in Counter(s).values())


# Documentation and test fixtures use recognisable fakes: AKIAIOSFODNN7EXAMPLE,
# ghp_xxxx..., sk_live_000000.... A random token never contains these.
_FAKE_TOKEN = re.compile(r"(?i)example|sample|dummy|placeholder|your[_-]|xxxx|(.)\1{5,}")


def _after_word_char(text: str, start: int) -> bool:
    """True when ``text[start]`` continues a word, e.g. the 'sk-' inside 'task-123'."""
    return start > 0 and text[start - 1].isalnum()


# --------------------------------------------------------------------- vendor tokens


@dataclass(frozen=True)
class TokenRule:
    """A vendor token recognised by its shape. Each pattern starts with a literal
    character (see ``TokenScanner``); a named group ``s``, if any, is the secret part."""

    kind: str
    patterns: tuple[str, ...]
    min_entropy: float = 3.0
    end: str = r"(?![\w+/=-])"  # no run-on: 'ghp_' + 36 inside a longer base64 blob is chance
    # A distinctive prefix is a token wherever it starts: after a JSON '\\n', '%3D', 'id=abc'.
    # Only prefixes that also end ordinary words ('...SK', 'production_') need a word boundary.
    glued: bool = True


def _rule(kind: str, *patterns: str, **options: Any) -> TokenRule:
    return TokenRule(kind, patterns, **options)


TOKEN_RULES: tuple[TokenRule, ...] = (
    # Cloud
    _rule("aws-access-key", r"A(?:KIA|SIA|BIA|CCA)[A-Z0-9]{16}"),
    _rule("gcp-api-key", r"AIza[\w-]{35}"),
    _rule("gcp-oauth-token", r"GOCSPX-[\w-]{28}", r"ya29\.[\w-]{30,400}+"),
    _rule(
        "azure-connection-string",
        r"AccountKey=(?P<s>[A-Za-z0-9+/]{86}==)",
        r"SharedAccessKey=(?P<s>[A-Za-z0-9+/]{42,43}+=)",
    ),
    _rule("digitalocean-token", r"do[opr]_v1_[a-f0-9]{64}"),
    _rule("alibaba-access-key", r"LTAI[A-Za-z0-9]{20}"),
    # Source hosting
    _rule("github-token", r"gh[pousr]_[A-Za-z0-9]{36}", r"github_pat_[A-Za-z0-9]{22}_[A-Za-z0-9]{59}"),
    _rule(
        "gitlab-token",
        r"gl(?:pat|dt|rt|ptt|ft|imt|cbt|oas|soat|ffct|agent)-[\w-]{20,80}+",
        r"GR1348941[\w-]{20}",
    ),
    _rule("bitbucket-token", r"ATBB[A-Za-z0-9_=.-]{32,64}+"),
    _rule("atlassian-token", r"AT(?:ATT|CTT)3[A-Za-z0-9_=.-]{100,300}+"),
    # Chat
    _rule("slack-token", r"xox[abposre]-[A-Za-z0-9-]{10,250}+", r"xapp-\d-[A-Z0-9]{1,20}+-\d{1,20}+-[a-z0-9]{1,80}+"),
    _rule("slack-webhook", r"hooks\.slack\.com/(?:services|workflows|triggers)/(?P<s>[A-Za-z0-9+/_-]{20,120}+)"),
    _rule("discord-webhook", r"discord(?:app)?\.com/api/webhooks/\d{5,20}+/(?P<s>[\w-]{60,80}+)"),
    # Payments
    _rule(
        "stripe-key",
        r"sk_(?:live|test)_[A-Za-z0-9]{20,247}+",
        r"rk_(?:live|test)_[A-Za-z0-9]{20,247}+",
        r"whsec_[A-Za-z0-9+/]{32,100}+",
    ),
    _rule("square-token", r"EAAA[\w-]{60}", r"sq0(?:atp-[\w-]{22}|csp-[\w-]{43})"),
    _rule(
        "paypal-braintree-token",
        r"access_token\$(?:production|sandbox)\$[a-z0-9]{16}\$[a-f0-9]{32}",
        r"production_[a-z0-9]{8}_[a-z0-9]{16}",
        r"sandbox_[a-z0-9]{8}_[a-z0-9]{16}",
        glued=False,
    ),
    _rule("shopify-token", r"shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}"),
    # AI providers (Anthropic before OpenAI: both start 'sk-')
    _rule("anthropic-api-key", r"sk-ant-(?:api|admin|sid|oat)\d{2}-[\w-]{80,120}+"),
    _rule("openai-api-key", r"sk-(?:(?:proj|svcacct|admin)-[\w-]{40,250}+|[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20})"),
    _rule("openai-api-key", r"sk-[A-Za-z0-9]{48}", glued=False),  # legacy: 'task-' + 48 is a test id too
    _rule("huggingface-token", r"hf_[A-Za-z]{34}", r"api_org_[A-Za-z]{34}"),
    _rule("groq-api-key", r"gsk_[A-Za-z0-9]{52}"),
    _rule("xai-api-key", r"xai-[A-Za-z0-9]{80}"),
    _rule("replicate-api-token", r"r8_[A-Za-z0-9]{37}"),
    # Package registries
    _rule("npm-token", r"npm_[A-Za-z0-9]{36}"),
    _rule("pypi-token", r"pypi-AgE(?:IcHlwaS5vcmc|NdGVzdC5weXBpLm9yZw)[\w-]{50,300}+"),
    # Messaging / email
    _rule("sendgrid-api-key", r"SG\.[\w-]{22}\.[\w-]{43}"),
    _rule("twilio-api-key", r"SK[0-9a-f]{32}", glued=False),
    _rule("mailgun-api-key", r"key-[0-9a-f]{32}"),
    # Infrastructure
    _rule("vault-token", r"hv[sbr]\.[\w-]{24,200}+"),
    _rule("databricks-token", r"dapi[a-f0-9]{32}(?:-\d)?"),
    _rule("age-secret-key", r"AGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}"),
    # JWTs: header and payload are base64 JSON objects, so both start 'eyJ' ('{"'). The
    # lookbehind skips an 'eyJ' after four or more [\w-] up front: 'eyJ-eyJ-...' would otherwise
    # cost a scan of the whole run per 'eyJ' (a shorter glue, 'x9eyJ…', is still a token).
    _rule("jwt", r"eyJ(?<![\w-]{4}eyJ)[\w-]{10,2048}+\.eyJ[\w-]{10,8192}+\.[\w-]{0,2048}+", min_entropy=3.5),
)


class TokenScanner:
    """Finds every ``TOKEN_RULES`` token with one regex per leading character.

    Forty-odd separate scans cost ~1 ms/MB each; grouped by first character
    ('A' for AKIA/AIza/ATBB..., 's' for sk-/sk_live_/sq0...) it is about 20 scans,
    each still a fast literal-prefix search. A short text is dominated by the cost
    of a call rather than of a scan, so it gets all groups in one regex instead.
    The regexes have no capture groups (a group before an alternative's first
    literal defeats sre's quick rejection of it), so a hit, which is rare, is
    re-matched against its group's rules, in priority order, for kind and span.
    """

    SHORT = 1536  # below this many characters (measured), one combined scan beats twenty

    def __init__(self, rules: tuple[TokenRule, ...]) -> None:
        groups: dict[str, list[tuple[int, re.Pattern[str]]]] = {}
        for ri, rule in enumerate(rules):
            for source in rule.patterns:
                assert source[0].isalnum(), f"{rule.kind}: pattern must start with a literal: {source}"
                groups.setdefault(source[0], []).append((ri, re.compile(source + rule.end)))
        self._rules = rules
        self._members = {first: tuple(members) for first, members in groups.items()}
        sources = [
            re.escape(first) + "(?:" + "|".join(p.pattern[1:].replace("(?P<s>", "(?:") for _, p in members) + ")"
            for first, members in groups.items()
        ]
        self._per_group = tuple(re.compile(source) for source in sources)
        self._combined = (re.compile("|".join(sources)),)

    def find(self, view: TextView) -> Iterator[Finding]:
        text = view.text
        found: list[tuple[int, int, int]] = []
        for scan in self._combined if len(text) < self.SHORT else self._per_group:
            for m in scan.finditer(text):
                at = m.start()
                glued = _after_word_char(text, at)
                for ri, pattern in self._members[text[at]]:
                    exact = pattern.match(text, at)
                    if exact is None:
                        continue
                    if glued and not self._rules[ri].glued:
                        break
                    start, end = exact.span("s") if "s" in pattern.groupindex else exact.span()
                    secret = text[start:end]
                    if not _FAKE_TOKEN.search(secret) and entropy(secret) >= self._rules[ri].min_entropy:
                        found.append((ri, start, end))
                    break
        found.sort()  # rule order: the priority the scrubber resolves overlaps by
        for ri, start, end in found:
            yield start, end, self._rules[ri].kind


@dataclass(frozen=True)
class AnchoredRule:
    """A token whose literal is not at its start (``123456789:AA...``, ``abc1Q~...``).

    Searching from the unknown start would try a match at every character (30x
    slower), so the search runs from the literal (``anchor``) and ``head``, whose
    group ``s`` starts the secret, must match the few characters right before it.
    ``needle``, if set, must occur somewhere in the text for the rule to run.
    """

    kind: str
    anchor: re.Pattern[str]
    head: re.Pattern[str] | None = None
    needle: str | None = None

    def find(self, view: TextView) -> Iterator[Finding]:
        text = view.text
        if self.needle is not None and self.needle not in text:
            return
        for m in self.anchor.finditer(text):
            start, end = m.span("s") if "s" in self.anchor.groupindex else m.span()
            if self.head is not None:
                h = self.head.search(text, max(0, m.start() - 16), m.start())
                if h is None:
                    continue
                start = h.start("s")
            elif _after_word_char(text, m.start()):
                continue
            secret = text[start:end]
            if not _FAKE_TOKEN.search(secret) and entropy(secret) >= 3.0:
                yield start, end, self.kind


ANCHORED_RULES: tuple[AnchoredRule, ...] = (
    # SAS signature: only in a text that also carries a SAS version (sv=) parameter.
    AnchoredRule(
        "azure-sas-token",
        re.compile(r"sig=(?P<s>[A-Za-z0-9%+/]{40,300}+(?:=|%3[Dd]){0,2})(?![\w%+/=-])"),
        needle="sv=",
    ),
    # Azure AD client secrets: 3 chars, a digit, 'Q~', then 31-34 chars.
    AnchoredRule(
        "azure-client-secret",
        re.compile(r"Q~[\w~.-]{31,34}(?![\w~.-])"),
        head=re.compile(r"(?<![\w~.])(?P<s>[\w~.]{3}\d)\Z"),
        needle="Q~",
    ),
    # Bot id, ':AA', 33 chars; in API URLs it follows "bot" (/bot123:AA.../sendMessage).
    AnchoredRule(
        "telegram-bot-token",
        re.compile(r":AA[\w-]{33}(?![\w-])"),
        head=re.compile(r"(?:(?<![A-Za-z0-9])|(?<=bot))(?P<s>\d{8,10})\Z"),
        needle=":AA",
    ),
)


class DiscordBotToken:
    """<base64 user id, 23-28>.<6>.<27-40>: no literal to search for, so anchor on the
    dotted middle segment and look back for the id, which must decode to digits
    (long dotted identifiers like Foo.barbaz.qux never do)."""

    kind = "discord-token"
    _tail = re.compile(r"\.[\w-]{6}\.[\w-]{27,40}(?![\w-])")
    _id_chars = frozenset(string.ascii_letters + string.digits + "_-")

    def find(self, view: TextView) -> Iterator[Finding]:
        text = view.text
        for m in self._tail.finditer(text):
            start = m.start()
            while start > 0 and m.start() - start <= 28 and text[start - 1] in self._id_chars:
                start -= 1
            head = text[start : m.start()]
            if 23 <= len(head) <= 28 and head[0] in "MNO" and _decodes_to_digits(head):
                token = text[start : m.end()]
                if not _FAKE_TOKEN.search(token) and entropy(token) >= 3.0:
                    yield start, m.end(), self.kind


def _decodes_to_digits(b64: str) -> bool:
    try:
        return base64.b64decode(b64 + "=" * (-len(b64) % 4), altchars=b"-_").isdigit()
    except (binascii.Error, ValueError):
        return False


# ------------------------------------------------------------------ structured blocks


def _trim_blank(text: str, start: int, end: int) -> tuple[int, int]:
    """Shrink a span past whitespace and JSON-escaped newlines at either end."""
    while start < end:
        if text[start] in " \t\r\n":
            start += 1
        elif text.startswith(("\\n", "\\r"), start):
            start += 2
        else:
            break
    while end > start:
        if text[end - 1] in " \t\r\n":
            end -= 1
        elif end - start >= 2 and text[end - 2 : end] in ("\\n", "\\r"):
            end -= 2
        else:
            break
    return start, end


_PEM_BEGIN = re.compile(r"-----BEGIN (?P<label>(?:[A-Z0-9]+ )*?PRIVATE KEY(?: BLOCK)?)-----")
# A key cut off before its END line (a truncated log or tool output): take the
# base64 and header lines that follow, in real or JSON-escaped newlines.
_PEM_TRUNCATED = re.compile(r"(?:(?:\r?\n|\\r?\\n)[ \t]*(?:[A-Za-z0-9+/=]{8,}+|[A-Za-z-]++: [^\r\n\\]*+)?)+")
_NOT_BASE64 = re.compile(r"[^A-Za-z0-9+/]")


class PrivateKeyBlock:
    """PEM private keys (RSA, EC, DSA, OPENSSH, PKCS#8, ENCRYPTED, PGP): the body is
    redacted, the BEGIN/END lines stay so a reader still sees what was there."""

    kind = "private-key"

    def find(self, view: TextView) -> Iterator[Finding]:
        text = view.text
        if "-----BEGIN" not in text:
            return
        pos = 0
        no_end: set[str] = set()  # labels with no END line left: searched once, not once per BEGIN
        while (m := _PEM_BEGIN.search(text, pos)) is not None:
            end_line = f"-----END {m['label']}-----"
            stop = -1 if m["label"] in no_end else text.find(end_line, m.end())
            if stop < 0:
                no_end.add(m["label"])
                tail = _PEM_TRUNCATED.match(text, m.end())
                stop = pos = tail.end() if tail else m.end()
            else:
                pos = stop + len(end_line)
            start, end = _trim_blank(text, m.end(), stop)
            body = text[start:end]
            # Documentation shows '...' or '<key>' in place of a body: not a secret.
            if MARKER_PREFIX not in body and len(_NOT_BASE64.sub("", body)) >= 32:
                yield start, end, self.kind


# The DER a private key's base64 starts with: RSA (PKCS#1), PKCS#8 and EC keys open with
# SEQUENCE then INTEGER version 0 or 1 ('MII…AgEA', 'MHcCAQEE'); an encrypted PKCS#8 key
# with SEQUENCE, SEQUENCE, then a PKCS#5/#12 algorithm OID; OpenSSH keys with
# 'openssh-key-v1'. Certificates and public keys open with SEQUENCE, SEQUENCE (and a
# different OID), so a pasted certificate is not taken for a key.
_DER_BODY = re.compile(r"(?:MI|MH|MG|MC|b3BlbnNzaC1rZXktdjE)[A-Za-z0-9+/]{62,}+={0,2}")
_PBE_OIDS = (bytes.fromhex("2a864886f70d0105"), bytes.fromhex("2a864886f70d010c01"))


def _der_private_key(head: bytes) -> bool:
    if head.startswith(b"openssh-key-v1"):
        return True
    if len(head) < 12 or head[0] != 0x30:
        return False
    at = 2 + (head[1] & 0x7F if head[1] & 0x80 else 0)  # past SEQUENCE and its length
    if head[at : at + 3] in (b"\x02\x01\x00", b"\x02\x01\x01"):
        return True
    if head[at : at + 1] == b"\x30" and at + 1 < len(head):  # EncryptedPrivateKeyInfo: SEQUENCE { SEQUENCE { OID
        inner = at + 2 + (head[at + 1] & 0x7F if head[at + 1] & 0x80 else 0)
        return head[inner : inner + 1] == b"\x06" and head[inner + 2 :].startswith(_PBE_OIDS)
    return False


class PemBody:
    """A private key's base64 body without its BEGIN line: pasted from the middle of a file,
    a secret manager or a CI variable. Found by its DER start (see ``_der_private_key``),
    in one line or, through the joined-lines view, in many."""

    kind = "private-key"

    def find(self, view: TextView) -> Iterator[Finding]:
        text = view.text
        if "M" not in text and "b3Blbn" not in text:
            return
        for m in _DER_BODY.finditer(text):
            if _after_word_char(text, m.start()):
                continue
            try:
                head = base64.b64decode(m.group()[:48], validate=True)
            except (binascii.Error, ValueError):
                continue
            if _der_private_key(head) and entropy(m.group()) >= 4.5:
                yield *m.span(), self.kind


class GcpServiceAccount:
    """The private key (and its id) inside a service-account JSON file, escaped PEM and all."""

    kind = "gcp-service-account"
    _key = re.compile(r'"private_key"\s*:\s*"(?P<s>(?:[^"\\]|\\.){40,8192}?)"')
    _key_id = re.compile(r'"private_key_id"\s*:\s*"(?P<s>[a-f0-9]{40})"')

    def find(self, view: TextView) -> Iterator[Finding]:
        text = view.text
        if '"private_key' not in text or ("service_account" not in text and "gserviceaccount" not in text):
            return
        for m in self._key.finditer(text):
            if "PRIVATE KEY" in m["s"]:
                yield *m.span("s"), self.kind
        for m in self._key_id.finditer(text):
            yield *m.span("s"), self.kind


# ------------------------------------------------------------- context: values


# Values that stand in for a secret rather than being one: env/template references
# (${X}, {{ x }}, %(x)s, $X, <x>), YAML tags/anchors/aliases, masks, and stock fakes.
_PLACEHOLDER = re.compile(
    r"""(?ix) ^[$%<{!&*@#] | \$\{ | \{\{ | \}\} | %\( | %s\b | \{\} | <[^>]*>
    | your[_-]? | ^my[_-] | example | sample | placeholder | dummy | fake | changeme | change[_-]me
    | replace[_-]?me | insert[_-] | redacted | masked | xxxx | \*\*\* | \.\.\. | (.)\1{4,}
    | ^(?:my|your|the)?(?:pass(?:word|wd)?|secret|token|test|admin|demo|qwerty|letmein)[\W_]*\d*$"""
)
_PLACEHOLDER_WORDS = frozenset(
    "password passwd secret token none null nil undefined true false required optional string str "
    "bytes int env empty hidden default changeit notasecret foobar test testing unset".split()
)
# Pointers to where a secret lives, not the secret: ARNs, vault/ssm/env references.
_REFERENCE = re.compile(r"(?i)^(?:arn|vault|ssm|env|file|secret|secrets|projects|op|ref|sm|gcp|aws|azure|k8s):")
_WHITESPACE = re.compile(r"\s")
_NUMERIC = re.compile(r"[\d.,:_+-]+")  # ports, counts, versions, timestamps
_PATH = re.compile(r"(?:~|\.{1,2})?/[\w.@~-]|[A-Za-z]:\\|\\\\")
# Code, not a literal: get_token(), os.environ["X"], ENC[...]; and settings.API_KEY when
# its parts are words (a random 'AzrOtk8.X7a' is a password with a dot in it).
_CALL = re.compile(r"[A-Za-z_$][\w$.]*[(\[]")
_DOTTED = re.compile(r"[A-Za-z_$][\w$]*(?:(?:\.|::|->|\?\.)[A-Za-z_$][\w$]*)+")
_DIGITS = re.compile(r"\d+")
_ENV_ASSIGNMENT = re.compile(r"(?:[a-z_]{2,}|[A-Z_]{2,})=[A-Za-z]+")  # `KEY=value`, `strict=False`: syntax
_SEPARATORS = re.compile(r"[:./_-]+")
_CAMEL_PART = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+")


def _wordy(value: str) -> bool:
    """Words, not randomness: user_password, DB_PASSWORD, OAuthToken, AWSAccessKeyId,
    X-Auth-Token, serverlessrepo:applicationId. Letters only, and split at separators
    and camel humps the parts average 3+ letters; random mixed case ('xKqPzRtW')
    breaks into parts of one or two."""
    parts = [p for p in _SEPARATORS.split(value) if p]
    if not parts or not all(p.isascii() and p.isalpha() for p in parts):
        return False
    words = [w for p in parts for w in _CAMEL_PART.findall(p)]
    return sum(map(len, words)) >= 3 * len(words)


def is_placeholder(value: str) -> bool:
    return (
        MARKER_PREFIX in value
        or value.lower() in _PLACEHOLDER_WORDS
        or _PLACEHOLDER.search(value) is not None
        or _REFERENCE.match(value) is not None
    )


def plausible_secret(value: str, *, password: bool) -> bool:
    """Is this assigned value a real credential rather than code, a path or a stand-in?"""
    # Human passwords can be short; API secrets are machine-made and long.
    if len(value) < (6 if password else 12) or _WHITESPACE.search(value):
        return False
    if is_placeholder(value) or "://" in value or "\\n" in value:
        return False
    if _NUMERIC.fullmatch(value) or _PATH.match(value) or _CALL.match(value):
        return False
    if _DOTTED.fullmatch(value) and _wordy(_DIGITS.sub("", value)):
        return False
    # All-letter words are names, labels and variables; this misses a password like
    # "letmeinplease", a price paid for not flagging `password = "Incorrect"` in tests.
    if _wordy(value) or _ENV_ASSIGNMENT.fullmatch(value):
        return False
    return entropy(value) >= (2.5 if password else 3.0)


# --------------------------------------------------------- context: URL passwords

_URL_CREDENTIALS = re.compile(r"://(?P<user>[^\s:/?#@\[\]\"'`<>,]{0,128}):(?P<s>[^\s/?#@\"'`<>,]{1,256})@(?=[\w\[.-])")
_URL_PLACEHOLDERS = frozenset("pass password passwd pwd secret changeme user username".split())


class UrlPassword:
    """scheme://user:password@host: only the password goes, user and host stay readable."""

    kind = "url-password"

    def find(self, view: TextView) -> Iterator[Finding]:
        text = view.text
        if "://" not in text:
            return
        for m in _URL_CREDENTIALS.finditer(text):
            pw = m["s"]
            if len(pw) < 3 or pw.lower() in _URL_PLACEHOLDERS or is_placeholder(pw):
                continue
            yield *m.span("s"), self.kind


# --------------------------------------------------- context: Authorization headers


@dataclass(frozen=True)
class HeaderRule:
    """A credential after an HTTP auth scheme, found in the lower-cased text."""

    kind: str
    needle: str  # `in` costs a quarter of a regex call on a short text: skip the call when we can
    pattern: re.Pattern[str]
    check: Callable[[str], bool]

    def find(self, view: TextView) -> Iterator[Finding]:
        text, low = view.text, view.lower
        if self.needle not in low:
            return
        for m in self.pattern.finditer(low):
            if _after_word_char(low, m.start()):
                continue
            start, end = m.span("s")
            if self.check(text[start:end]):
                yield start, end, self.kind


def _bearer_ok(value: str) -> bool:
    return not is_placeholder(value) and not _wordy(value) and entropy(value) >= 3.0


def _basic_ok(value: str) -> bool:
    # 'basic' is an English word; only a base64 'user:password' is a credential.
    try:
        decoded = base64.b64decode(value + "=" * (-len(value) % 4), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return False
    _user, sep, pw = decoded.partition(":")
    return bool(sep) and decoded.isprintable() and len(pw) >= 3 and not is_placeholder(pw)


HEADER_RULES: tuple[HeaderRule, ...] = (
    HeaderRule(
        "bearer-token", "bearer", re.compile(r"bearer[ \t]+(?P<s>[a-z0-9._~+/-]{16,4096}=*)(?![\w.~+/=-])"), _bearer_ok
    ),
    HeaderRule("basic-auth", "basic", re.compile(r"basic[ \t]+(?P<s>[a-z0-9+/]{8,1024}={0,2})(?![\w+/=-])"), _basic_ok),
    HeaderRule(
        "auth-header",
        "authorization",
        re.compile(
            r"""authorization["']?[ \t]*[:=][ \t]*["']?(?:token|apikey|api-key|key|ssws|sso-key)[ \t]+"""
            r"""(?P<s>[^\s"'`,;]{8,512})"""
        ),
        lambda v: plausible_secret(v, password=False),
    ),
)


# --------------------------------------------------- context: keyword assignments

# One pattern per keyword, each a literal prefix (see module docstring), run on the
# lower-cased text. After the keyword: the rest of the identifier, a closing quote,
# an operator (=, :, :=, =>, or '>' for <password>...</password>), then the value.
_ASSIGN_PATTERNS = tuple(
    (
        needles,
        re.compile(
            kw + r"""(?P<tail>[a-z0-9_.-]{0,40}+)(?P<q>\\?["'\]]{0,2})[ \t]*"""
            r"""(?P<op>:=|=>|=(?!=)|:(?![:/\\])|>)(?P<ws>[ \t]*)"""
        ),
    )
    for kw, needles in (
        ("p(?:ass|wd)", ("pass", "pwd")),
        ("secret", ("secret",)),
        ("token", ("token",)),
        ("key", ("key",)),
        ("cred", ("cred",)),
        ("auth", ("auth",)),
    )
)
# A space is an operator only in `--password value` and .netrc `login x password value`;
# as separate patterns, prose like "the token budget" never reaches Python.
_SPACED_PATTERNS = (
    re.compile(r"-(?<![^\s\"'`(]-)-(?P<tail>[a-z][a-z0-9_.-]{0,59}+)[ \t]+"),  # '--' after a space, not 'a--b'
    re.compile(r"login[ \t]+[^\s]{1,128}[ \t]+(?P<tail>passw(?:or)?d)[ \t]+"),
)
_IDENT_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_.-")
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")
_PASSWORD_WORDS = frozenset({"pass", "password", "passwd", "pwd", "passphrase", "passcode", "passwords"})
_SECRET_WORDS = frozenset(
    {"secret", "secrets", "token", "tokens", "credential", "credentials", "cred", "creds", "secretkey", "auth"}
)
# '<x>_key' is a secret only after these words (api_key, signingKey, ...); a bare 'key' is a dict key.
_KEY_PREFIXES = frozenset(
    "api access secret private signing sign encryption encrypt master auth app client consumer "
    "license licence account service subscription shared storage admin session hmac jwt webhook "
    "deploy root ingest write".split()
)
# Identifiers that hold something about a secret, not the secret itself.
_DENY_WORDS = frozenset(
    "id ids name names type types kind class cls file files path paths dir url uri endpoint host "
    "env var vars field fields header headers hash hashed digest salt hint prompt label text message "
    "msg error err policy regex pattern format fmt template length len size count num max min limit "
    "total expiry expires expiration expire ttl timeout lifetime reset page next prev continuation "
    "cancellation cancel sync public pub example sample dummy fake mock placeholder mode method "
    "scope scopes version index idx pos position offset start end input widget validator validation "
    "valid invalid required enabled enable disabled show is has use should allow callback handler "
    "func function factory cache list map dict ref arn column col store manager provider param prefix "
    "suffix csrf xsrf".split()
)
# `token: str = "..."`: a type annotation, then the literal.
_ANNOTATION = re.compile(r"[A-Za-z_][\w\[\], |.]*?[ \t]*=(?!=)[ \t]*(?=[rbuRBU]?[\"'])")
_CODE_FOLLOWS = re.compile(r"[,()\[\]{}]|[ \t]*[|=]")
# An unquoted value ends at a JSON escape too: 'db_password=x\\ndone' in escaped tool output is 'x'.
_BARE_VALUE = re.compile(r"(?:[^\s\"'`,;&<>()\[\]{}\\]|\\(?![nrt]))(?:[^\s\"'`,;&<>()\[\]{}\\]|\\(?![nrt])){0,511}")
_VALUE_MAX = 512

# Identifier mentions a vendor: use its kind, and accept a value of its exact shape
# even when the generic heuristics would hesitate (an AWS secret may start with '/').
_VENDOR_HINT = re.compile(
    r"aws|secretaccesskey|alibaba|aliyun|accesskeysecret|cohere|co_api_key|bitbucket|twilio|mailgun|paypal"
    r"|braintree|discord"
)
_VENDORS: tuple[tuple[tuple[str, ...], str, re.Pattern[str] | None], ...] = (
    (("aws", "secret"), "aws-secret-key", re.compile(r"[A-Za-z0-9/+=]{40}")),
    (("secretaccesskey",), "aws-secret-key", re.compile(r"[A-Za-z0-9/+=]{40}")),
    (("alibaba",), "alibaba-secret-key", re.compile(r"[A-Za-z0-9]{30}")),
    (("aliyun",), "alibaba-secret-key", re.compile(r"[A-Za-z0-9]{30}")),
    (("accesskeysecret",), "alibaba-secret-key", re.compile(r"[A-Za-z0-9]{30}")),
    (("cohere",), "cohere-api-key", re.compile(r"[A-Za-z0-9]{40}")),
    (("co_api_key",), "cohere-api-key", re.compile(r"[A-Za-z0-9]{40}")),
    (("bitbucket",), "bitbucket-token", None),
    (("twilio",), "twilio-api-key", re.compile(r"[a-f0-9]{32}")),
    (("mailgun",), "mailgun-api-key", re.compile(r"(?:key-)?[a-f0-9]{32}(?:-[a-f0-9]{8}-[a-f0-9]{8})?")),
    (("paypal",), "paypal-braintree-token", None),  # PayPal owns Braintree: one payments family
    (("braintree",), "paypal-braintree-token", None),
    (("discord",), "discord-token", None),
)


def _read_value(text: str, pos: int, xml: bool) -> tuple[int, int, bool] | None:
    """(start, end, is_literal) of the value that starts at ``pos``, without quotes."""
    n = len(text)
    if pos >= n:
        return None
    if xml:
        end = text.find("<", pos, pos + _VALUE_MAX)
        return (pos, end, True) if end > pos else None
    c = text[pos]
    if c in "rRbBuU" and pos + 1 < n and text[pos + 1] in "\"'":  # r"...", b'...'
        if c in "rR":
            return None  # a raw string is a regex or a Windows path, not a credential
        pos += 1
        c = text[pos]
    if c == "\\" and pos + 1 < n and text[pos + 1] in "\"'":  # JSON inside a JSON string: \"...\"
        quote, start = text[pos : pos + 2], pos + 2
    elif c in "\"'`":
        quote, start = c, pos + 1
    else:
        m = _BARE_VALUE.match(text, pos)
        # An unquoted value inside a call, signature or list (`f(password=pw1)`,
        # `def f(token: OAuth2Token, ...)`, `key: Ed25519Key | None = None`) is an
        # expression or a type, never a literal.
        if m is None:
            return None
        return pos, m.end(), _CODE_FOLLOWS.match(text, m.end()) is None
    end = text.find(quote, start, start + _VALUE_MAX)
    if end <= start or text.find("\n", start, end) >= 0:
        return None
    return start, end, True


def _ident_kind(words: list[str]) -> str | None:
    """'password', 'generic-secret', or None: is this identifier a credential's name?"""
    password = secret = False
    for i, w in enumerate(words):
        if w in _DENY_WORDS:
            return None
        if w in _PASSWORD_WORDS or w.endswith(("password", "passwd", "pwd")):
            password = True
        elif (
            w in _SECRET_WORDS
            or w.endswith(("secret", "token"))
            or (w == "key" and i > 0 and words[i - 1] in _KEY_PREFIXES)
            or (w.endswith("key") and w[:-3] in _KEY_PREFIXES)
        ):
            secret = True
    return "password" if password else "generic-secret" if secret else None


class KeywordAssignment:
    """`password = "..."`, `API_KEY=...`, `"client_secret": "..."`, `--token value`."""

    def find(self, view: TextView) -> Iterator[Finding]:
        low = view.lower
        for needles, pattern in _ASSIGN_PATTERNS:
            if any(map(low.__contains__, needles)):
                yield from self._assignments(view, pattern)
        for pattern in _SPACED_PATTERNS:
            for m in pattern.finditer(low):
                if (found := self._judge(view, m.start("tail"), m.end("tail"), " ", m.end())[0]) is not None:
                    yield found

    def _assignments(self, view: TextView, pattern: re.Pattern[str]) -> Iterator[Finding]:
        low = view.lower
        resume = 0
        for m in pattern.finditer(low):
            if m.start() < resume:
                continue  # inside the value just taken ("password=password=...")
            ident_start = _ident_start(low, m.start())
            if _not_an_assignment(view, ident_start, m):
                continue
            found, resume = self._judge(view, ident_start, m.end("tail"), m["op"], m.end())
            if found is not None:
                yield found

    @staticmethod
    def _judge(view: TextView, ident_start: int, ident_end: int, op: str, pos: int) -> tuple[Finding | None, int]:
        """The finding, if any, and where the next keyword match may start: past the
        value when it was taken or unquoted, so 'a=password=password=...' stays linear."""
        text, low = view.text, view.lower
        kind = _ident_kind([w.lower() for w in _WORD.findall(text, ident_start, ident_end)])
        if kind is None:
            return None, 0
        if op == ":" and (annotation := _ANNOTATION.match(text, pos)) is not None:
            pos = annotation.end()
        span = _read_value(text, pos, xml=op == ">")
        if span is None:
            return None, 0
        start, end, literal = span
        skip = 0 if start > pos else end  # a quoted string may hold a real assignment; a bare word not
        if not literal:
            return None, skip
        value = text[start:end]
        password = kind == "password"
        vendor = _vendor(low[ident_start:ident_end])
        if vendor is not None:  # a vendor's key name: its own shape, or any plausible secret
            kind, shape = vendor
            if is_placeholder(value) or not (shape is not None and shape.fullmatch(value) or plausible_secret(value, password=password)):
                return None, skip
            return (start, end, kind), end
        if plausible_secret(value, password=password):
            return (start, end, kind), end
        return None, skip


def _vendor(ident: str) -> tuple[str, re.Pattern[str] | None] | None:
    """The kind and value shape of the first vendor whose key name ``ident`` is."""
    if _VENDOR_HINT.search(ident):
        for needles, vendor_kind, shape in _VENDORS:
            if all(n in ident for n in needles):
                return vendor_kind, shape
    return None


def _ident_start(low: str, keyword: int) -> int:
    """Where the name ending in a keyword starts: DB_PASSWORD (at most 64 characters before it)."""
    start = keyword
    while start > 0 and keyword - start < 64 and low[start - 1] in _IDENT_CHARS:
        start -= 1
    return start


def _not_an_assignment(view: TextView, ident_start: int, m: re.Match[str]) -> bool:
    """A keyword match that is no assignment: a path segment, a comparison, a coordinate."""
    text, low, op = view.text, view.lower, m["op"]
    if ident_start > 0 and low[ident_start - 1] in ":/" and not low.endswith("$env:", 0, ident_start):
        return True  # a segment of an ARN, URN or path (secretsmanager:...:secret:name)
    if op == ">" and (ident_start == 0 or text[ident_start - 1] != "<"):
        return True  # only <password>value</password>, not `token > 0`
    # `io.jsonwebtoken:jjwt`, `secret:name`: a coordinate, not YAML or JSON
    return op == ":" and not m["q"] and not m["ws"] and low[m.end() : m.end() + 1] not in "\"'`"


# Detectors that know a secret by a label or a setting around it, not by its own shape.
CONTEXT_DETECTORS: tuple[Detector, ...] = (UrlPassword(), *HEADER_RULES, KeywordAssignment())
DETECTORS: tuple[Detector, ...] = (
    GcpServiceAccount(),
    PrivateKeyBlock(),
    PemBody(),
    TokenScanner(TOKEN_RULES),
    *ANCHORED_RULES,
    DiscordBotToken(),
    *CONTEXT_DETECTORS,
)

KINDS: frozenset[str] = frozenset(
    {r.kind for r in TOKEN_RULES}
    | {r.kind for r in ANCHORED_RULES}
    | {r.kind for r in HEADER_RULES}
    | {DiscordBotToken.kind}
    | {GcpServiceAccount.kind, PrivateKeyBlock.kind, UrlPassword.kind, "password", "generic-secret"}
    | {kind for _, kind, _ in _VENDORS}
)
"""Every kind a marker can carry."""
