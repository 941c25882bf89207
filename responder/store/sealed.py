"""The person's data at rest: columns sealed with AES-GCM under a keyring of versioned data keys.

`RESPONDER_DATA_KEYS` holds the keyring: `id:base64key` entries separated by commas, each key 32
random bytes (`responder keys new` prints one). The first key seals; every key opens, so a rotation
adds a new key first, re-seals the rows (`responder keys rotate`) and then drops the old one.

A sealed value is text: `sealed:<key id>:<base64 of nonce + ciphertext + tag>`. The column's name is
the associated data, so a ciphertext moved to another column does not open. What the columns hold is
sealed as the row is written and opened as it is read (the SQLAlchemy types below), so no query and no
view handles the key. With no keyring in use, writing a sealed column raises: there is never a
plaintext fallback. Rows written before the columns were sealed read as they were, until the rotation
seals them.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy.engine import Dialect
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

    def seal(self, plain: bytes, context: str) -> str:
        key_id, key = self.keys[0]
        nonce = os.urandom(NONCE_BYTES)
        sealed = AESGCM(key).encrypt(nonce, plain, context.encode())
        return f"{PREFIX}{key_id}:{base64.b64encode(nonce + sealed).decode()}"

    def open(self, value: str, context: str) -> bytes:
        key_id, _, encoded = value.removeprefix(PREFIX).partition(":")
        key = dict(self.keys).get(key_id)
        if key is None:
            raise SealError(f"sealed under key {key_id!r}, which RESPONDER_DATA_KEYS does not hold")
        try:
            raw = base64.b64decode(encoded, validate=True)
            return AESGCM(key).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], context.encode())
        except (binascii.Error, ValueError, InvalidTag):
            raise SealError(f"a value sealed under key {key_id!r} does not open with it") from None


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


class _Sealed(TypeDecorator[Any]):
    """Text in the database, sealed with the process's keyring; `context` names the column."""

    impl = Text
    cache_ok = True

    def __init__(self, context: str) -> None:
        super().__init__()
        self.context = context

    def _dump(self, value: Any) -> bytes:
        raise NotImplementedError

    def _load(self, plain: bytes | str) -> Any:
        raise NotImplementedError

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return keyring().seal(self._dump(value), self.context)

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if isinstance(value, str) and value.startswith(PREFIX):
            return self._load(keyring().open(value, self.context))
        return self._load(value)  # written before the column was sealed: the rotation seals it


class SealedJSON(_Sealed):
    cache_ok = True

    def _dump(self, value: Any) -> bytes:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()

    def _load(self, plain: bytes | str) -> Any:
        return json.loads(plain) if not isinstance(plain, dict | list) else plain


class SealedText(_Sealed):
    cache_ok = True

    def _dump(self, value: Any) -> bytes:
        return str(value).encode()

    def _load(self, plain: bytes | str) -> Any:
        return plain.decode() if isinstance(plain, bytes) else plain


# What staff write on a case's timeline: a note's text, the reason given with an outcome.
PERSONAL_DETAIL_KEYS = ("text", "note")


class TimelineDetail(TypeDecorator[Any]):
    """A timeline event's detail: JSON, with what staff wrote (PERSONAL_DETAIL_KEYS) sealed inside it,
    so the rest (statuses, reasons, counts) stays readable to the review."""

    impl = JSON
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if not isinstance(value, dict) or not any(
            isinstance(value.get(k), str) for k in PERSONAL_DETAIL_KEYS
        ):
            return value
        return {
            k: seal_text(v, f"case_event.detail.{k}")
            if k in PERSONAL_DETAIL_KEYS and isinstance(v, str)
            else v
            for k, v in value.items()
        }

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        if not isinstance(value, dict):
            return value
        return {
            k: open_text(v, f"case_event.detail.{k}") if k in PERSONAL_DETAIL_KEYS else v
            for k, v in value.items()
        }


def seal_text(value: str, context: str) -> str:
    """A value sealed for a place no column type covers (a note's text inside a timeline event)."""
    return keyring().seal(value.encode(), context)


def open_text(value: Any, context: str) -> Any:
    """`seal_text`'s value opened (anything not sealed is returned as it is)."""
    if isinstance(value, str) and value.startswith(PREFIX):
        return keyring().open(value, context).decode()
    return value
