"""Redaction (placeholder: replaced by the full module on the redact branch)."""

from __future__ import annotations

from collections.abc import Iterable

WITHHELD = "[withheld]"
_OWN = frozenset({"event", "level", "timestamp"})


class Redactor:
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: list[str] = []
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str) -> None:
        if secret and secret not in self._secrets:
            self._secrets.append(secret)

    def carries(self, value: str) -> bool:
        return any(s == value or (len(s) >= 12 and s in value) for s in self._secrets)

    def value(self, value: str) -> str:
        return WITHHELD if self.carries(value) else value

    def text(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, WITHHELD)
        return text

    def document(self, obj: object) -> object:
        if isinstance(obj, str):
            return self.text(obj)
        if isinstance(obj, dict):
            return {k: v if k in _OWN else self.document(v) for k, v in obj.items()}
        if isinstance(obj, list | tuple):
            return [self.document(v) for v in obj]
        return obj
