"""Every Redis key tradestore uses is built here, under the configured prefix.

Keys are `<prefix><namespace>:<part>:<part>...`; parts are escaped so that a caller's
value (a symbol, a user id) can never reach into another namespace.
"""

from __future__ import annotations


def _escape(part: object) -> str:
    return str(part).replace("\\", "\\\\").replace(":", "\\:")


class Keys:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def key(self, namespace: str, *parts: object) -> str:
        """`<prefix><namespace>:<part>...`; namespace is a fixed literal of the caller's."""
        return ":".join([self.prefix + namespace, *map(_escape, parts)])

    def pattern(self, namespace: str, *parts: object) -> str:
        """A SCAN/PSUBSCRIBE pattern for every key under namespace[:parts]: the literal
        part glob-escaped, so a value such as `*` or `[a-z]` matches only itself."""
        return _glob_escape(self.key(namespace, *parts)) + ":*"


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)
