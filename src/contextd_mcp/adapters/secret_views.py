"""Decoded views of a text, each with the map back to the original's offsets.

Agents store tool output, and tool output hides secrets in encodings: JSON string
escapes (``"loaded:\\nghp_…"``), URL-encoding (``token%3Dghp_…``), base64 and hex blobs,
lines wrapped by a terminal or joined by ``\\`` or ``"…" +``. The scrubber runs its
detectors on each view and maps what they find back to a span of the original, so
the encoded span is redacted where it sits and the text around it still reads.

A view is a list of pieces: stretches copied as they are (offsets shift by a constant)
and escapes (``\\n`` → newline, ``%3D`` → ``=``, a removed line break → nothing). A
decoded character inside an escape maps to the whole escape. Pieces are built only
where the original has something to decode, so a clean text costs a few C-level
searches (see ``bench/bench_scrubber_encodings.py`` for the figures).
"""

from __future__ import annotations

import base64
import binascii
import bisect
import re
from collections.abc import Callable, Iterator

Span = tuple[int, int]


class View:
    """``text``, decoded from ``parent`` (None for the original), with its offset map."""

    __slots__ = ("_build", "_dec", "_lit", "_ostart", "_oend", "parent", "text")

    def __init__(self, text: str, parent: View | None, build: Callable[[], list[tuple[int, int, int, bool]]]) -> None:
        self.text = text
        self.parent = parent
        self._build = build  # pieces are only needed to map a finding back: rare, so built lazily
        self._dec: list[int] | None = None

    def _pieces(self) -> None:
        pieces = self._build()
        self._dec = [p[0] for p in pieces]
        self._ostart = [p[1] for p in pieces]
        self._oend = [p[2] for p in pieces]
        self._lit = [p[3] for p in pieces]

    def to_parent(self, start: int, end: int) -> Span:
        if self._dec is None:
            self._pieces()
        assert self._dec is not None
        i = bisect.bisect_right(self._dec, start) - 1
        out_start = self._ostart[i] + (start - self._dec[i]) if self._lit[i] else self._ostart[i]
        j = bisect.bisect_right(self._dec, end - 1) - 1
        out_end = self._ostart[j] + (end - self._dec[j]) if self._lit[j] else self._oend[j]
        return out_start, out_end

    def to_root(self, start: int, end: int) -> Span:
        view: View | None = self
        while view is not None and view.parent is not None:
            start, end = view.to_parent(start, end)
            view = view.parent
        return start, end


def root(text: str) -> View:
    return View(text, None, list)


Decode = Callable[[re.Match[str], int], str]


def _at(decode: Decode, offset: int) -> Callable[[re.Match[str]], str]:
    """``decode`` for matches in a slice of the text that starts at ``offset``."""
    return lambda m: decode(m, offset)


def _blob_pieces(start: int, end: int, size: int) -> Callable[[], list[tuple[int, int, int, bool]]]:
    """The offset map of a blob ``text[start:end]`` decoded to ``size`` characters."""
    return lambda: [(0, start, end, False), (size, end, end, True)]
"""The text an escape stands for; the int is where the matched slice starts in the parent."""

WINDOW = 256  # characters kept on each side of an escape: a token (<= 250) or a label and its value fit
_GAP = "\n\n"  # between windows: no detector reads across a blank line (see mcp/response.py)


def _windows(text: str, near: re.Pattern[str]) -> list[tuple[int, int]]:
    """Spans covering at least ``WINDOW`` characters around every match of ``near``.

    The text is cut in blocks of ``WINDOW``; a block with a match brings its neighbours in.
    One search per such block, however many matches it holds: log lines with a ``%2C`` or
    a ``\\n`` each would otherwise cost a Python step per match."""
    blocks: list[int] = []
    pos = 0
    while (m := near.search(text, pos)) is not None:
        block = m.start() // WINDOW
        blocks.append(block)
        pos = max(m.end(), (block + 1) * WINDOW)
    windows: list[tuple[int, int]] = []
    for block in blocks:
        lo, hi = max(0, (block - 1) * WINDOW), min(len(text), (block + 2) * WINDOW + WINDOW // 2)
        if windows and lo <= windows[-1][1]:
            windows[-1] = (windows[-1][0], hi)
        else:
            windows.append((lo, hi))
    return windows


def _decoded_view(
    parent: View,
    pattern: re.Pattern[str],
    decode: Decode,
    near: re.Pattern[str] | None = None,
    windows: list[tuple[int, int]] | None = None,
) -> View | None:
    """``parent`` with every match of ``pattern`` replaced by its decoding, within windows
    around the matches of ``near`` (the escapes worth decoding; all of them by default),
    windows joined by a blank line; None if there is nothing to decode. What lies farther
    from every escape reads the same decoded or not, and the original's own scan has
    judged it: code with a ``\\n`` per 2 KB would otherwise be scanned twice over."""
    text = parent.text
    if windows is None:
        windows = _windows(text, near or pattern)
    if not windows:
        return None
    # Matched on slices, in both passes, so a lookbehind never sees past a window's edge.
    parts = [pattern.sub(_at(decode, lo), text[lo:hi]) for lo, hi in windows]

    def build() -> list[tuple[int, int, int, bool]]:
        pieces: list[tuple[int, int, int, bool]] = []
        dec = 0
        for lo, hi in windows:
            pos = lo
            for m in pattern.finditer(text[lo:hi]):
                start, end = lo + m.start(), lo + m.end()
                if start > pos:
                    pieces.append((dec, pos, start, True))
                    dec += start - pos
                pieces.append((dec, start, end, False))
                dec += len(decode(m, lo))
                pos = end
            pieces.append((dec, pos, hi, True))
            dec += hi - pos
            pieces.append((dec, hi, hi, False))  # the gap maps to the window's end
            dec += len(_GAP)
        return pieces

    return View(_GAP.join(parts), parent, build)


# ----------------------------------------------------------------- JSON string escapes

_JSON_ESCAPE = re.compile(r"\\(?:u[0-9a-fA-F]{4}|[\"\\/bfnrt])")
_SIMPLE = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


def _json_char(m: re.Match[str], _base: int = 0) -> str:
    s = m.group()
    return chr(int(s[2:], 16)) if s[1] == "u" else _SIMPLE[s[1]]


# The escapes worth a window. Around most '\\n', '\\t' and '\\"' the original reads the same to
# every detector (a token glued to '\\n' is found as it is, `\\"password\\": \\"…\\"` too), so
# only these: '\\uXXXX', '\\/', '\\\\', and a '\\n' or '\\r' between runs of token characters as
# long as ``_line_break`` asks for (a wrapped token or a key body inside a JSON string).
_JSON_NEAR = re.compile(
    r"\\(?:u[0-9a-fA-F]{4}|/|\\)|\\[nr](?<=[\w+/=.-]{10}\\[nr])(?:\\[nrt]|[ \t])*(?=[\w+/=.-]{8})"
)


def json_unescaped(parent: View) -> View | None:
    """``\\n``, ``\\"``, ``\\/``, ``\\uXXXX`` … decoded: JSON (or a JSON string inside JSON) read as text."""
    if "\\" not in parent.text:
        return None
    return _decoded_view(parent, _JSON_ESCAPE, _json_char, near=_JSON_NEAR)


# ----------------------------------------------------------------------- URL-encoding

_URL_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
_URL_ANY = re.compile(r"%[0-9A-Fa-f]{2}|\+")


def _url_char(m: re.Match[str], _base: int = 0) -> str:
    s = m.group()
    return " " if s == "+" else chr(int(s[1:], 16))


URL_RUN_MAX = 4096  # characters kept on each side of an escape within its run


def _url_windows(text: str) -> list[tuple[int, int]]:
    """The whitespace-free run around each %XX escape (a URL, a query, a form body): what
    decodes together. Tighter than ``_windows``: a log with a URL every few lines would
    otherwise be decoded and scanned twice over."""
    windows: list[tuple[int, int]] = []
    pos = 0
    while (m := _URL_ESCAPE.search(text, pos)) is not None:
        lo = max(0, m.start() - URL_RUN_MAX, *(text.rfind(c, 0, m.start()) + 1 for c in " \t\n\r"))
        after = _SPACE.search(text, m.end(), m.end() + URL_RUN_MAX)
        hi = after.start() if after else min(len(text), m.end() + URL_RUN_MAX)
        if windows and lo <= windows[-1][1]:
            windows[-1] = (windows[-1][0], hi)
        else:
            windows.append((lo, hi))
        pos = hi
    return windows


_SPACE = re.compile(r"\s")


def url_decoded(parent: View) -> View | None:
    """``%XX`` and ``+`` decoded, byte by byte (secrets are ASCII: a multi-byte UTF-8
    character decodes to several stand-ins, which is all a scan needs)."""
    if "%" not in parent.text or _URL_ESCAPE.search(parent.text) is None:
        return None
    return _decoded_view(parent, _URL_ANY, _url_char, windows=_url_windows(parent.text))


# ------------------------------------------------------------------ lines joined again

# A break counts when token characters run up to it and on after it: a wrapped token, not
# prose or code that happens to end a line. Each form is found by its own pattern, run only
# when a C-level check finds what it needs (one alternation of them scans 10x slower).
_TOKEN_CHARS = r"[\w+/=.-]"  # noqa: S105 - a character class, not a password
# Ten before a plain line break, eight after (or a short last line, as a key body ends):
# half of the shortest wrapped secret. Fewer would join every log line ('... ms=123' then
# '2026-12-04T...'): on log text (6, 6) joins 2,500 breaks per MB, (10, 8) none; a secret
# cut with fewer than eight characters on its second line is missed (its first part
# alone is still redacted when a label or prefix names it).
def _line_break(newline: str) -> re.Pattern[str]:
    after = rf"[ \t]*(?={_TOKEN_CHARS}{{8}}|{_TOKEN_CHARS}{{1,7}}(?:\r?\n|$))"
    return re.compile(rf"{newline}(?<={_TOKEN_CHARS}{{10}}{newline}){after}")


# "abc" +\n "def", and Python's implicit "abc"\n "def". The match starts at a quote, and a
# pattern that starts with a character class tries every quote of a source file: windows
# are found from the newline instead (``_CONCAT_NEAR``), the match made only inside them.
_CONCAT = re.compile(rf"""["'][ \t]*\+?[ \t]*\r?\n[ \t]*["'](?={_TOKEN_CHARS}{{4}})""")
_CONCAT_NEAR = re.compile(rf"""\n(?:(?<=["'+]\n)|(?<=["'+]\r\n))[ \t]*["'](?={_TOKEN_CHARS}{{4}})""")
_BREAKS = (  # (strings one of which every match holds: a C-speed check before the scan, the pattern)
    (("\\\n", "\\\r"), re.compile(rf"\\\r?\n[ \t]*(?={_TOKEN_CHARS})")),  # shell / C line continuation
    (('"\n', "'\n", "+\n", '"\r', "'\r", "+\r"), _CONCAT),
    (("\n",), _line_break(r"\n")),
    (("\r",), _line_break(r"\r\n")),
)
_FINDERS = {_CONCAT: _CONCAT_NEAR}  # where the windows come from, if not the pattern itself


JOIN_REACH = 512  # characters looked at on each side of a break, at most

# Within the windows the separate patterns found, one pass of them all: applied one after
# another, each pattern's windows would drop the regions of the others.
_ANY_BREAK = re.compile("|".join(f"(?:{pattern.pattern})" for _, pattern in _BREAKS))


def _break_spans(text: str) -> list[tuple[int, int]]:
    """Around each line break that may cut a token: the line it ends and the line it starts.
    A token or a label and its value that a break cuts lies within those two lines."""
    spans: list[tuple[int, int]] = []
    for needles, pattern in _BREAKS:
        if any(map(text.__contains__, needles)):
            for m in _FINDERS.get(pattern, pattern).finditer(text):
                reach_lo, reach_hi = max(0, m.start() - JOIN_REACH), min(len(text), m.end() + JOIN_REACH)
                lo = text.rfind("\n", reach_lo, m.start())  # -1: no line start within reach
                hi = text.find("\n", m.end(), reach_hi)
                spans.append((lo + 1 if lo >= 0 else reach_lo, hi if hi >= 0 else reach_hi))
    return spans


def _merged(spans: list[tuple[int, int]]) -> tuple[list[tuple[int, int]], bool]:
    """Overlapping spans merged (a key body's lines chain up), and whether any did: a break on
    the line another one starts, only then can a token run on."""
    windows: list[tuple[int, int]] = []
    chained = False
    for lo, hi in sorted(spans):
        if windows and lo <= windows[-1][1]:
            windows[-1] = (windows[-1][0], max(hi, windows[-1][1]))
            chained = True
        else:
            windows.append((lo, hi))
    return windows, chained


def joined(parent: View, parity: int | None = None) -> View | None:
    """``parent`` with wrapped lines joined: each break (and the indentation after it) removed.

    With ``parity`` 0 or 1 only every other break is removed: a token wrapped once must not
    run on into the line after it (``…Xe4`` + ``next_step:`` is no token), and with both
    parities scanned each break is joined once with its neighbours left apart. Without it
    all are joined: a key body runs over many lines."""
    text = parent.text
    windows, chained = _merged(_break_spans(text))
    if parity is not None and not chained:
        return None  # every break stands alone: the view with all joined says all there is
    if not any(_ANY_BREAK.search(text, lo, hi) for lo, hi in windows):
        return None  # a finder's candidate that is no break after all
    keep: dict[int, bool] = {}

    def decode(m: re.Match[str], base: int) -> str:
        if parity is None:
            return ""
        at = base + m.start()
        if at not in keep:  # first seen in sub(), in text order; build() reuses it
            keep[at] = len(keep) % 2 != parity
        return m.group() if keep[at] else ""

    return _decoded_view(parent, _ANY_BREAK, decode, windows=windows)


# ------------------------------------------------------------------ base64 / hex blobs

BLOB_MIN = 24  # base64 chars: 18 bytes, shorter than the shortest secret line in base64 (AKIA…: 28)
HEX_MIN = 32  # hex chars: 16 bytes
_B64_CHARS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/_-"
# Blob candidates are found on a translated copy (base64 characters → 'a', others → ' '),
# where a run is a literal 'a' * BLOB_MIN that re finds at C speed: 3x faster than a
# character-class pattern, which tries a match at every letter.
_TO_RUNS = bytes(ord("a") if i in _B64_CHARS else ord(" ") for i in range(256))
_RUN = re.compile(b"a" * BLOB_MIN + b"a*")
_PRINTABLE = bytes([9, 10, 13, *range(32, 127)])
_HEX = frozenset("0123456789abcdefABCDEF")


# ASCII text has its top bit clear, so in its base64 the first character of every 4 (the top
# six bits of a byte) is one of 'A'-'f' (0-31), and in its hex every other digit is 0-7.
# Checked in C on a slice, this turns away hashes, ids and identifiers before any decoding.
_NOT_B64_TEXT_LEAD = str.maketrans("", "", "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdef")
_NOT_HEX_TEXT_LEAD = str.maketrans("", "", "0234567")


def _decode_blob(blob: str) -> str | None:
    """The text a base64, base64url or hex blob holds; None if it holds bytes, not text."""
    data: bytes | None = None
    if len(blob) >= HEX_MIN and len(blob) % 2 == 0 and _HEX.issuperset(blob):
        if blob[::2].translate(_NOT_HEX_TEXT_LEAD):
            return None
        data = bytes.fromhex(blob)
    else:
        if blob[::4].translate(_NOT_B64_TEXT_LEAD):
            return None
        altchars = b"-_" if ("-" in blob or "_" in blob) else None
        if altchars and ("+" in blob or "/" in blob):
            return None
        try:
            data = base64.b64decode(blob + "=" * (-len(blob) % 4), altchars=altchars, validate=True)
        except (binascii.Error, ValueError):
            return None
    # Text, not an image, a hash or a key's binary: nearly every byte printable ASCII.
    if len(data) < 16 or len(data.translate(None, _PRINTABLE)) > 0.05 * len(data):  # counted in C
        return None
    return data.decode("ascii", errors="replace")


def blobs(parent: View) -> Iterator[View]:
    """A view per base64/hex blob of ``parent`` that decodes to text. Any finding in it maps
    to the whole blob: a secret's bytes are spread over the blob's characters."""
    text = parent.text
    runs = text.encode("ascii", "replace").translate(_TO_RUNS)  # one byte per character: same offsets
    for m in _RUN.finditer(runs):
        start, end = m.span()
        while end < len(text) and end - m.end() < 2 and text[end] == "=":
            end += 1
        blob = text[start:end].rstrip("=")
        # After a JSON escape ('\\nQUtJ…') the run starts with the escape's letter: skip it.
        # (Other glue, 'data=abcQUtJ…', is left: trying every alignment of every run halves
        # the speed on log text, for a form nobody writes.)
        for skip in (0, 1) if start and text[start - 1] == "\\" else (0,):
            decoded = _decode_blob(blob[skip:])
            if decoded is not None:
                start += skip
                break
        if decoded is not None:
            yield View(decoded, parent, _blob_pieces(start, end, len(decoded)))


_INDENT = re.compile(r"[ \t]*")


def wrapped(text: str, start: int, end: int) -> bool:
    """Whether every line break in ``text[start:end]`` continues the line: a ``\\`` or a
    quoted concatenation, or a next line indented deeper than the one it breaks (a
    wrap). ``KEY=a`` over ``NEXT=b`` at one indentation are two lines, not one value."""
    pos = text.find("\n", start, end)
    while pos >= 0:
        before = text[max(0, pos - 8) : pos].rstrip("\r")
        if not before.endswith("\\") and not before.rstrip(" \t+").endswith(("\"", "'")):
            line_start = text.rfind("\n", 0, pos) + 1
            this = _INDENT.match(text, line_start)
            nxt = _INDENT.match(text, pos + 1)
            if this is None or nxt is None or nxt.end() - nxt.start() <= this.end() - this.start():
                return False
        pos = text.find("\n", pos + 1, end)
    return True
