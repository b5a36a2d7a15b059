"""API keys: ED25519 public keys (base64) and the account each one acts for.

DIR/keys.sqlite holds public keys only; Keel never sees or stores a secret (spec 2.1).
The gateway reads the table once at start and keeps it in memory; `add` writes through
(durably: synchronous=FULL) before the key is usable. An account is created in the log
first and its key stored after, so a crash in between leaves an empty account with no
key, never a key without an account.

The operator key is DIR/operator.pub (hex, written by `keel init`); it signs the
operator API and is not an account key.

Imports: keel.node (the operator key's file names).
"""

from __future__ import annotations

import base64
import binascii
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat
from nacl.signing import VerifyKey

from keel.node.node import OPERATOR_KEY_NAME, OPERATOR_PUBLIC_KEY_NAME

KEYS_NAME = "keys.sqlite"


@dataclass(frozen=True, slots=True)
class ApiKey:
    public_key_b64: str
    account_id: int
    verifier: VerifyKey


def public_key_from_b64(text: str) -> VerifyKey:
    """Return the ED25519 public key in a base64 string; raise ValueError if it is not one."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("an API key is the base64 of a 32-byte ED25519 public key") from None
    if len(raw) != 32:
        raise ValueError("an API key is the base64 of a 32-byte ED25519 public key")
    return VerifyKey(raw)


def new_key_pair() -> tuple[str, str]:
    """Return a fresh (api key, api secret): base64 public key and base64 32-byte seed."""
    private = Ed25519PrivateKey.generate()
    seed = private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.b64encode(public).decode(), base64.b64encode(seed).decode()


def operator_public_key_b64(data_dir: Path) -> str:
    """Return the operator's public key (DIR/operator.pub, hex) as base64, as clients send it."""
    raw = bytes.fromhex((data_dir / OPERATOR_PUBLIC_KEY_NAME).read_text().strip())
    return base64.b64encode(raw).decode()


def operator_secret_b64(data_dir: Path) -> str:
    """Return the operator's seed (DIR/operator.key, hex) as base64, the form signing clients take."""
    raw = bytes.fromhex((data_dir / OPERATOR_KEY_NAME).read_text().strip())
    return base64.b64encode(raw).decode()


class KeyStore:
    """Public key -> account id, in DIR/keys.sqlite and in memory."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / KEYS_NAME
        self._write_lock = threading.Lock()
        connection = self._connect()
        try:
            connection.execute(
                "CREATE TABLE IF NOT EXISTS api_keys ("
                " public_key TEXT PRIMARY KEY,"
                " account_id INTEGER NOT NULL,"
                " created_ns INTEGER NOT NULL)"
            )
            rows = connection.execute("SELECT public_key, account_id FROM api_keys").fetchall()
        finally:
            connection.close()
        self._keys: dict[str, ApiKey] = {}
        for public_key, account_id in rows:
            self._keys[public_key] = ApiKey(public_key, int(account_id), public_key_from_b64(public_key))

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.path, isolation_level=None, timeout=10)
        connection.execute("PRAGMA synchronous=FULL")
        return connection

    def get(self, public_key_b64: str) -> ApiKey | None:
        return self._keys.get(public_key_b64)

    def add(self, public_key_b64: str, account_id: int) -> ApiKey:
        """Store a key for an account (durably) and make it usable; raise ValueError if malformed or taken."""
        assert account_id > 0
        key = ApiKey(public_key_b64, account_id, public_key_from_b64(public_key_b64))
        with self._write_lock:
            if public_key_b64 in self._keys:
                raise ValueError("this public key is already registered")
            connection = self._connect()
            try:
                connection.execute(
                    "INSERT INTO api_keys (public_key, account_id, created_ns) VALUES (?, ?, ?)",
                    (public_key_b64, account_id, time.time_ns()),
                )
            except sqlite3.IntegrityError:
                raise ValueError("this public key is already registered") from None
            finally:
                connection.close()
            self._keys[public_key_b64] = key
        return key

    def accounts(self) -> dict[str, int]:
        """Return every key's account (tests and tools)."""
        return {key: entry.account_id for key, entry in self._keys.items()}
