"""Bounded capture of a stream: keep the first and last bytes, count the rest."""

from __future__ import annotations


class HeadTail:
    """Keeps at most `limit` bytes whatever is fed: the head, then a rolling tail.

    Memory stays O(limit) for any amount of input, so a flood of gigabytes is drained without the
    server growing. Until `limit` is exceeded nothing is dropped and the text is exact.
    """

    def __init__(self, limit: int) -> None:
        self._head_cap = limit // 2
        self._tail_cap = limit - self._head_cap
        self._head = bytearray()
        self._tail = bytearray()
        self.total = 0

    def feed(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self._head_cap - len(self._head)
        if room > 0:
            self._head += chunk[:room]
            chunk = chunk[room:]
        if not chunk:
            return
        if len(chunk) >= self._tail_cap:
            self._tail = bytearray(chunk[len(chunk) - self._tail_cap :])
        else:
            self._tail += chunk
            excess = len(self._tail) - self._tail_cap
            if excess > 0:
                del self._tail[:excess]

    @property
    def truncated(self) -> bool:
        return self.total > len(self._head) + len(self._tail)

    def text(self) -> str:
        if not self.truncated:
            return (self._head + self._tail).decode("utf-8", "replace")
        omitted = self.total - len(self._head) - len(self._tail)
        head = self._head.decode("utf-8", "replace")
        tail = self._tail.decode("utf-8", "replace")
        return f"{head}\n[... {omitted} bytes omitted ...]\n{tail}"
