"""The person's data at rest: columns sealed with AES-GCM under a keyring of versioned data keys.

`RESPONDER_DATA_KEYS` holds the keyring: `id:base64key` entries separated by commas, each key 32
random bytes (`responder keys new` prints one). The first key seals; every key opens, so a rotation
adds a new key first, re-seals the rows (`responder keys rotate`) and then drops the old one.

A sealed value is text: `sealed:<key id>:<base64 of nonce + ciphertext + tag>`. The associated data
is the column's name and the case's id, so a ciphertext moved to another column, or to another case's
row, does not open. What the columns hold is sealed as the row is written (the value says its case:
`for_case()`) and opened as it is read, with the case id the select reads beside it (the SQLAlchemy
types below), so no query and no view handles the key. With no keyring in use, writing a sealed column
raises: there is never a plaintext fallback. Rows written before the columns were sealed read as they
were, and values sealed for the column alone (before they were bound to their case) still open, until
the rotation seals them anew.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, overload

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import type_coerce
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import JSON, Text, TypeDecorator

PREFIX = "sealed:"
KEY_BYTES = 32
NONCE_BYTES = 12
_KEY_ID = re.compile(r"^[A-Za-z0-9_-]{1,16}$")


class KeyringError(ValueError):
    """The keyring setting is missing or malformed (the message never quotes a key)."""


class SealError(ValueError):
    """A sealed value that no key of the keyring opens (a wrong key, or a damaged value)."""


@dataclass(frozen=True)
class Keyring:
    """Versioned data keys: the first seals, all open."""

    keys: tuple[tuple[str, bytes], ...]

    @classmethod
    def parse(cls, text: str) -> Keyring:
        entries = [part.strip() for part in text.split(",") if part.strip()]
        if not entries:
            raise KeyringError("RESPONDER_DATA_KEYS is empty: give at least one id:base64key")
        keys: list[tuple[str, bytes]] = []
        for n, entry in enumerate(entries, 1):
            key_id, sep, encoded = entry.partition(":")
            if not sep or not _KEY_ID.match(key_id):
                raise KeyringError(
                    f"RESPONDER_DATA_KEYS entry {n}: must be id:base64key (id: letters, digits, - or _)"
                )
            try:
                key = base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError):
                raise KeyringError(
                    f"RESPONDER_DATA_KEYS entry {n} ({key_id}): the key is not base64"
                ) from None
            if len(key) != KEY_BYTES:
                raise KeyringError(
                    f"RESPONDER_DATA_KEYS entry {n} ({key_id}): "
                    f"the key must be {KEY_BYTES} bytes, not {len(key)}"
                )
            if key_id in (k for k, _ in keys):
                raise KeyringError(f"RESPONDER_DATA_KEYS entry {n}: key id {key_id} appears twice")
            keys.append((key_id, key))
        return cls(tuple(keys))

    @property
    def current(self) -> str:
        return self.keys[0][0]

    def seal(self, plain: bytes, context: str, case_id: str) -> str:
        key_id, key = self.keys[0]
        nonce = os.urandom(NONCE_BYTES)
        sealed = _aead(key).encrypt(nonce, plain, associated_data(context, case_id))
        return f"{PREFIX}{key_id}:{base64.b64encode(nonce + sealed).decode()}"

    def open(self, value: str, context: str, case_id: str) -> bytes:
        """The plain bytes of a value sealed for this column of this case. A value sealed before values
        were bound to their case (the column alone as associated data) still opens, until the rotation
        re-seals it (`bound()` says which)."""
        plain, _ = self._open(value, context, case_id)
        return plain

    def bound(self, value: str, context: str, case_id: str) -> bool:
        """Whether the value opens as sealed for this column of this case (not in the older form)."""
        return self._open(value, context, case_id)[1]

    def _open(self, value: str, context: str, case_id: str) -> tuple[bytes, bool]:
        key_id, _, encoded = value.removeprefix(PREFIX).partition(":")
        key = dict(self.keys).get(key_id)
        if key is None:
            raise SealError(f"sealed under key {key_id!r}, which RESPONDER_DATA_KEYS does not hold")
        try:
            raw = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise SealError(f"a value sealed under key {key_id!r} is damaged") from None
        nonce, sealed = raw[:NONCE_BYTES], raw[NONCE_BYTES:]
        for data, is_bound in ((associated_data(context, case_id), True), (context.encode(), False)):
            try:
                return _aead(key).decrypt(nonce, sealed, data), is_bound
            except (ValueError, InvalidTag):
                continue
        raise SealError(f"a value sealed under key {key_id!r} does not open with it for this case")


def associated_data(context: str, case_id: str) -> bytes:
    """What a sealed value is bound to: its column and its case. A ciphertext copied into another
    column, or into another case's row, does not open."""
    return f"{context}\x1f{case_id}".encode()


@functools.lru_cache(maxsize=16)
def _aead(key: bytes) -> AESGCM:
    return AESGCM(key)


def new_key_entry(key_id: str) -> str:
    """A keyring entry with a fresh random key."""
    if not _KEY_ID.match(key_id):
        raise KeyringError("a key id is 1 to 16 letters, digits, - or _")
    return f"{key_id}:{base64.b64encode(os.urandom(KEY_BYTES)).decode()}"


def key_of(value: str | None) -> str | None:
    """The id of the key a stored value is sealed under (None: not sealed)."""
    if value is None or not value.startswith(PREFIX):
        return None
    return value.removeprefix(PREFIX).partition(":")[0]


_keyring: Keyring | None = None


def use_keyring(keyring: Keyring | None) -> None:
    """The process's keyring (set once at start; None: sealed columns can be neither written nor read)."""
    global _keyring
    _keyring = keyring


def keyring() -> Keyring:
    if _keyring is None:
        raise KeyringError("no data keys in use: set RESPONDER_DATA_KEYS")
    return _keyring


class BoundDict(dict[str, Any]):
    """A dict to be sealed (or opened) for one case: the case id goes into the associated data."""

    __slots__ = ("case_id",)

    def __init__(self, case_id: str, value: Mapping[str, Any]) -> None:
        super().__init__(value)
        self.case_id = case_id


class BoundText(str):
    """Text to be sealed (or opened) for one case."""

    __slots__ = ("case_id",)
    case_id: str

    def __new__(cls, case_id: str, value: str) -> BoundText:
        made = super().__new__(cls, value)
        made.case_id = case_id
        return made


@overload
def for_case(case_id: str, value: Mapping[str, Any]) -> BoundDict: ...
@overload
def for_case(case_id: str, value: str) -> BoundText: ...
@overload
def for_case(case_id: str, value: None) -> None: ...
def for_case(case_id: str, value: Mapping[str, Any] | str | None) -> BoundDict | BoundText | None:
    """The value as written to a sealed column of that case (sealing needs to know its case)."""
    if value is None:
        return None
    return BoundText(case_id, value) if isinstance(value, str) else BoundDict(case_id, value)


def _case_of(value: Any) -> str:
    case_id = getattr(value, "case_id", None)
    if not isinstance(case_id, str):
        raise SealError("a sealed value must be written for its case: for_case(case_id, value)")
    return case_id


_ROW = "|"  # between the row's case id and the stored value, as a sealed column is read


class _Sealed(TypeDecorator[Any]):
    """Text in the database, sealed with the process's keyring for its column (`context`) and its case.

    Read, the column comes with its row's case id (`column_expression`), so the value is opened for
    that case: one copied from another case's row does not open."""

    impl = Text
    cache_ok = True

    def __init__(self, context: str, case_column: str = "id") -> None:
        super().__init__()
        self.context = context
        self.case_column = case_column

    def _dump(self, value: Any) -> bytes:
        raise NotImplementedError

    def _load(self, case_id: str, plain: bytes | str) -> Any:
        raise NotImplementedError

    def column_expression(self, column: Any) -> Any:
        table = getattr(column, "table", None)
        if table is None or self.case_column not in table.c:
            return column  # not a plain column of its table: read as stored, refused if sealed
        return type_coerce(table.c[self.case_column] + _ROW + type_coerce(column, Text()), self)

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return keyring().seal(self._dump(value), self.context, _case_of(value))

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        case_id, sep, stored = str(value).partition(_ROW)
        if not sep:
            raise SealError(f"{self.context} read without its case")
        if stored.startswith(PREFIX):
            return self._load(case_id, keyring().open(stored, self.context, case_id))
        return self._load(case_id, stored)  # written before the column was sealed: the rotation seals it


class SealedJSON(_Sealed):
    cache_ok = True

    def _dump(self, value: Any) -> bytes:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()

    def _load(self, case_id: str, plain: bytes | str) -> Any:
        return BoundDict(case_id, json.loads(plain))


class SealedText(_Sealed):
    cache_ok = True

    def _dump(self, value: Any) -> bytes:
        return str(value).encode()

    def _load(self, case_id: str, plain: bytes | str) -> Any:
        return BoundText(case_id, plain.decode() if isinstance(plain, bytes) else plain)


# What staff write on a case's timeline: a note's text, the reason given with an outcome.
PERSONAL_DETAIL_KEYS = ("text", "note")


class _WithCase(FunctionElement[Any]):
    """[case id, detail] as one JSON value: a timeline event's detail read with its case."""

    type = JSON()
    inherit_cache = True


@compiles(_WithCase, "sqlite")
def _with_case_sqlite(element: _WithCase, compiler: Any, **kw: Any) -> str:
    case_id, detail = (compiler.process(c, **kw) for c in element.clauses)
    return f"json_array({case_id}, json({detail}))"


@compiles(_WithCase)
def _with_case_default(element: _WithCase, compiler: Any, **kw: Any) -> str:
    case_id, detail = (compiler.process(c, **kw) for c in element.clauses)
    return f"json_build_array({case_id}, {detail})"


class TimelineDetail(TypeDecorator[Any]):
    """A timeline event's detail: JSON, with what staff wrote (PERSONAL_DETAIL_KEYS) sealed inside it
    for the event's case, so the rest (statuses, reasons, counts) stays readable to the review."""

    impl = JSON
    cache_ok = True

    def column_expression(self, column: Any) -> Any:
        table = getattr(column, "table", None)
        if table is None or "case_id" not in table.c:
            return column
        return type_coerce(_WithCase(table.c.case_id, type_coerce(column, JSON())), self)

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if not isinstance(value, dict) or not any(
            isinstance(value.get(k), str) for k in PERSONAL_DETAIL_KEYS
        ):
            return value
        case_id = _case_of(value)
        return {
            k: seal_text(v, f"case_event.detail.{k}", case_id)
            if k in PERSONAL_DETAIL_KEYS and isinstance(v, str)
            else v
            for k, v in value.items()
        }

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        if isinstance(value, list) and len(value) == 2:
            case_id, detail = value
        else:
            case_id, detail = None, value
        if not isinstance(detail, dict):
            return detail
        opened = {}
        for k, v in detail.items():
            if k in PERSONAL_DETAIL_KEYS and isinstance(v, str) and v.startswith(PREFIX):
                if case_id is None:
                    raise SealError("case_event.detail read without its case")
                v = open_text(v, f"case_event.detail.{k}", case_id)
            opened[k] = v
        return BoundDict(case_id, opened) if case_id is not None else opened


def seal_text(value: str, context: str, case_id: str) -> str:
    """A value sealed for a place no column type covers (a note's text inside a timeline event)."""
    return keyring().seal(value.encode(), context, case_id)


def open_text(value: Any, context: str, case_id: str) -> Any:
    """`seal_text`'s value opened (anything not sealed is returned as it is)."""
    if isinstance(value, str) and value.startswith(PREFIX):
        return keyring().open(value, context, case_id).decode()
    return value
