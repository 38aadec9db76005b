"""Every Redis key tradestore uses is built here, under the configured prefix.

Keys are `<prefix><namespace>:<part>:<part>...`; parts are escaped so that a caller's
value (a symbol, a user id) can never reach into another namespace.

Keys that one Lua script touches together are built with `tagged`: their shared part is a
Redis Cluster hash tag (`{...}`), so they live in one slot of a cluster (a script over
keys of two slots fails there with CROSSSLOT). The slot is that of the text between the
key's first `{` and the next `}`: keys made with the same tag agree on it whatever the
tag holds, as long as the prefix has no `{`.
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

    def tagged(self, namespace: str, tag: object, *parts: object) -> str:
        """`<prefix><namespace>:{<tag>}:<part>...`: in a cluster, every key of one tag is
        in the same slot."""
        text = _escape(tag)
        if not text:
            raise ValueError("a hash tag may not be empty (Redis would hash the whole key)")
        return ":".join([f"{self.prefix}{namespace}", "{" + text + "}", *map(_escape, parts)])

    def pattern(self, namespace: str, *parts: object) -> str:
        """A SCAN/PSUBSCRIBE pattern for every key under namespace[:parts]: the literal
        part glob-escaped, so a value such as `*` or `[a-z]` matches only itself."""
        return self.pattern_under(self.key(namespace, *parts))

    @staticmethod
    def pattern_under(key: str) -> str:
        """A SCAN/PSUBSCRIBE pattern for every key `<key>:...` (key glob-escaped)."""
        return _glob_escape(key) + ":*"


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)
