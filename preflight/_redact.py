"""Withhold passwords from everything the preflight prints. Pure, standard library only.

A password is never masked in part: a configuration value that *is* or *carries*
a password is replaced as a whole by :data:`WITHHELD`, and in free text (libpq and
server messages, hints) the whole token around it is. Comparison happens after
:func:`normalise`, so escaped, re-cased, re-spaced and percent-encoded copies are
found as well.

The "carries" rule (docs/security.md explains why):

- both sides are compared after :func:`normalise`;
- a secret whose normalised form has fewer than :data:`SHORT_SECRET` characters
  counts only where it stands as a whole token: bounded on both sides by the text's
  start or end, whitespace, or a delimiter (quotes, backslash and URL/conninfo
  punctuation ``: / @ ? # & = , ; ( ) [ ] { } < > |``, but not ``. - _``), so
  ``balancer_dev`` and ``db.example.com`` stay readable;
- a longer secret counts anywhere as a substring, and in free text the whole word
  around it (up to whitespace, quotes or brackets) is withheld, a URL included.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import NamedTuple
from urllib.parse import quote, quote_plus

WITHHELD = "[withheld]"
"""What stands in the place of a withheld value or token (readable, valid in JSON)."""

SHORT_SECRET = 12
"""Normalised secrets shorter than this count only as whole tokens."""

KEPT_FIELDS = frozenset({"event", "level", "timestamp"})
"""Fields of a log event whose values are our own vocabulary: :meth:`Redactor.document`
leaves them alone."""

_WORD_BREAKS = frozenset("\"'`\\(){}<>,;|")
_DELIMITERS = _WORD_BREAKS | frozenset(":/@?#&=[]")
_ESCAPES = {'"': '"', "'": "'", "\\": "\\", "/": "/", "n": "\n", "t": "\t", "r": "\r", "f": "\f"}
_HEX = frozenset("0123456789abcdefABCDEF")
_MAX_ROUNDS = 8  # decoding rounds in normalise(): enough for any realistic nesting


def _delimits(char: str) -> bool:
    return char.isspace() or char in _DELIMITERS


def _breaks_word(char: str) -> bool:
    return char.isspace() or char in _WORD_BREAKS


class _Unit(NamedTuple):
    """One character of a text under decoding, and the span of the original it came from."""

    char: str
    start: int
    end: int


class _View(NamedTuple):
    """A normalised text with, per character, its span in the original text."""

    text: str
    starts: tuple[int, ...]
    ends: tuple[int, ...]
    gaps: tuple[bool, ...]  # whitespace was removed just before this character

    def bounded(self, i: int, j: int) -> bool:
        """``text[i:j]`` does not cut a token in two on either side."""
        text = self.text
        start = i == 0 or self.gaps[i] or _delimits(text[i - 1]) or _delimits(text[i])
        end = j == len(text) or self.gaps[j] or _delimits(text[j]) or _delimits(text[j - 1])
        return start and end


def _hex_at(units: list[_Unit], i: int, length: int) -> int | None:
    digits = units[i : i + length]
    if len(digits) < length or any(u.char not in _HEX for u in digits):
        return None
    return int("".join(u.char for u in digits), 16)


def _escape_at(units: list[_Unit], i: int) -> tuple[str, int] | None:
    """The character a backslash escape at ``units[i]`` stands for, and its length."""
    if i + 1 >= len(units):
        return None
    kind = units[i + 1].char
    if kind in _ESCAPES:
        return _ESCAPES[kind], 2
    size = {"x": 2, "u": 4, "U": 8}.get(kind)
    code = _hex_at(units, i + 2, size) if size else None
    if size is None or code is None or code > 0x10FFFF:
        return None
    length = 2 + size
    if kind == "u" and 0xD800 <= code < 0xDC00:  # a JSON surrogate pair
        tail = units[i + 6 : i + 8]
        low = _hex_at(units, i + 8, 4) if [u.char for u in tail] == ["\\", "u"] else None
        if low is not None and 0xDC00 <= low < 0xE000:
            code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
            length = 12
    return chr(code), length


def _unescape(units: list[_Unit]) -> tuple[list[_Unit], bool]:
    """One pass undoing backslash escapes (JSON's and Python's repr's)."""
    out: list[_Unit] = []
    i = 0
    while i < len(units):
        found = _escape_at(units, i) if units[i].char == "\\" else None
        if found is None:
            out.append(units[i])
            i += 1
            continue
        char, length = found
        out.append(_Unit(char, units[i].start, units[i + length - 1].end))
        i += length
    return out, len(out) != len(units)


def _percent_decode(units: list[_Unit]) -> tuple[list[_Unit], bool]:
    """One pass decoding ``%XX`` sequences as UTF-8; anything invalid stays as it is."""
    out: list[_Unit] = []
    i = 0
    while i < len(units):
        run: list[int] = []  # byte values of consecutive %XX, from units[i]
        while True:
            at = i + 3 * len(run)
            code = _hex_at(units, at + 1, 2) if at < len(units) and units[at].char == "%" else None
            if code is None:
                break
            run.append(code)
        if not run:
            out.append(units[i])
            i += 1
            continue
        out.extend(_decode_run(units, i, bytes(run)))
        i += 3 * len(run)
    return out, len(out) != len(units)


def _decode_run(units: list[_Unit], first: int, raw: bytes) -> Iterator[_Unit]:
    """The characters of a run of ``%XX`` bytes; undecodable bytes stay as ``%XX``."""
    k = 0
    while k < len(raw):
        for size in range(1, 5):
            try:
                char = raw[k : k + size].decode("utf-8")
            except UnicodeDecodeError:
                continue
            yield _Unit(char, units[first + 3 * k].start, units[first + 3 * (k + size) - 1].end)
            k += size
            break
        else:
            yield from units[first + 3 * k : first + 3 * k + 3]
            k += 1


def _view(text: str, *, decode: bool) -> _View:
    """``text`` casefolded and without whitespace; escapes and %XX undone if ``decode``."""
    units = [_Unit(c, i, i + 1) for i, c in enumerate(text)]
    for _ in range(_MAX_ROUNDS if decode else 0):
        units, unescaped = _unescape(units)
        units, decoded = _percent_decode(units)
        if not (unescaped or decoded):
            break
    chars: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    gaps: list[bool] = []
    gap = False
    for unit in units:
        if unit.char.isspace():
            gap = True
            continue
        for char in unit.char.casefold():
            chars.append(char)
            starts.append(unit.start)
            ends.append(unit.end)
            gaps.append(gap)
            gap = False
    return _View("".join(chars), tuple(starts), tuple(ends), tuple(gaps))


def normalise(text: str) -> str:
    """The form in which secrets and texts are compared.

    In this order: backslash escapes are undone (``\\"``, ``\\\\``, ``\\'``, ``\\/``,
    ``\\n``, ``\\t``, ``\\r``, ``\\f``, ``\\xXX``, ``\\uXXXX`` with JSON surrogate
    pairs, ``\\UXXXXXXXX``) and ``%XX`` sequences are decoded as UTF-8, both
    repeated until nothing changes (at most 8 rounds), so doubly escaped or encoded
    copies match too; an invalid escape or ``%`` sequence stays as it is and nothing
    raises. Then every character is casefolded and all whitespace is removed.
    """
    return _view(text, decode=True).text


def _encodings(secret: str) -> set[str]:
    """The literal forms in which a secret is likely to be printed."""
    return {
        secret,
        secret.upper(),
        secret.lower(),
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        repr(secret)[1:-1],
        quote(_bytes(secret), safe=""),
        quote(_bytes(secret)),
        quote_plus(_bytes(secret)),
    }


def _bytes(secret: str) -> bytes:
    """UTF-8, with the surrogates that stand for non-UTF-8 bytes in the environment."""
    try:
        return secret.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return secret.encode("utf-8", "surrogatepass")


class _Secret(NamedTuple):
    long: bool
    literal: frozenset[str]  # compared against the text casefolded, without whitespace
    decoded: frozenset[str]  # compared against normalise(text)


def _spans(view: _View, secret: _Secret, patterns: Iterable[str]) -> Iterator[tuple[int, int]]:
    """Spans of the original text where ``view`` shows one of ``patterns``."""
    for pattern in patterns:
        i = view.text.find(pattern)
        while i >= 0:
            j = i + len(pattern)
            if secret.long or view.bounded(i, j):
                yield view.starts[i], view.ends[j - 1]
            i = view.text.find(pattern, i + 1)


def _widen(text: str, start: int, end: int, *, word: bool) -> tuple[int, int]:
    """The span grown to the whole token (or, for ``word``, the whole word) around it."""
    stop = _breaks_word if word else _delimits
    if not stop(text[start]):
        while start > 0 and not stop(text[start - 1]):
            start -= 1
    if not stop(text[end - 1]):
        while end < len(text) and not stop(text[end]):
            end += 1
    return start, end


def _replace(text: str, spans: list[tuple[int, int]]) -> str:
    """``text`` with each span (merged where they overlap or touch) replaced by WITHHELD."""
    parts: list[str] = []
    done = 0
    for start, end in sorted(spans):
        if start < done:
            done = max(done, end)
            continue
        if start == done and parts and parts[-1] == WITHHELD:
            done = max(done, end)
            continue
        parts.extend((text[done:start], WITHHELD))
        done = end
    parts.append(text[done:])
    return "".join(parts)


def _placeholders(text: str) -> list[tuple[int, int]]:
    found: list[tuple[int, int]] = []
    i = text.find(WITHHELD)
    while i >= 0:
        found.append((i, i + len(WITHHELD)))
        i = text.find(WITHHELD, i + 1)
    return found


class Redactor:
    """Knows the secrets of one run and withholds them from values, texts and documents."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: dict[str, _Secret] = {}
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str) -> None:
        """Register one more secret; an empty (or all-whitespace) one is ignored."""
        key = normalise(secret)
        if not key or secret in self._secrets:
            return
        forms = _encodings(secret)
        self._secrets[secret] = _Secret(
            long=len(key) >= SHORT_SECRET,
            literal=frozenset(p for p in (_view(f, decode=False).text for f in forms) if p),
            decoded=frozenset(p for p in (normalise(f) for f in forms) if p),
        )

    def _matches(self, text: str) -> list[tuple[int, int]]:
        """Widened spans of ``text`` that carry a secret."""
        if not self._secrets or not text:
            return []
        literal = _view(text, decode=False)
        decoded = _view(text, decode=True)
        found: list[tuple[int, int]] = []
        for secret in self._secrets.values():
            for view, patterns in ((literal, secret.literal), (decoded, secret.decoded)):
                last = (0, 0)
                for start, end in _spans(view, secret, patterns):
                    if not (last[0] <= start and end <= last[1]):  # else: widened already
                        last = _widen(text, start, end, word=secret.long)
                        found.append(last)
        return found

    def carries(self, value: str) -> bool:
        """``value`` is, or carries, a registered secret (the rule in the module doc)."""
        return bool(self._matches(value))

    def value(self, value: str) -> str:
        """A configuration value as it is, or WITHHELD as a whole if it carries a secret."""
        return WITHHELD if self.carries(value) else value

    def text(self, text: str) -> str:
        """Free text with every token (word, for long secrets) carrying a secret withheld.

        If withholding ever left a secret detectable (a placeholder joining its
        neighbours into one), the scan repeats; after four rounds the whole text is
        withheld.
        """
        for _ in range(4):
            inside = _placeholders(text)
            spans = [
                (start, end)
                for start, end in self._matches(text)
                if not any(a <= start and end <= b for a, b in inside)
            ]
            if not spans:
                return text
            text = _replace(text, spans)
        return WITHHELD

    def document(self, obj: object) -> object:
        """A new JSON-ready structure: keys kept, strings through :meth:`text`.

        The values of ``event``, ``level`` and ``timestamp`` are kept as they are;
        a number, boolean or null whose JSON text carries a secret becomes WITHHELD.
        """
        if isinstance(obj, str):
            return self.text(obj)
        if isinstance(obj, dict):
            return {k: v if k in KEPT_FIELDS else self.document(v) for k, v in obj.items()}
        if isinstance(obj, list | tuple):
            return [self.document(v) for v in obj]
        if obj is None or isinstance(obj, int | float):
            return WITHHELD if self.carries(json.dumps(obj)) else obj
        return obj
