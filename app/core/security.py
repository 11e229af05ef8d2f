"""API keys: random 256-bit tokens, stored only as SHA-256 digests.

A slow password hash (bcrypt, argon2) buys nothing for keys with 256 bits of
entropy and would cost milliseconds per request; SHA-256 is the usual choice for
machine-generated tokens. The lookup is by digest and the final comparison is
constant-time.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets

KEY_PREFIX = "fa_"
# how many leading characters of a key name it in listings, logs and `keys revoke`: "fa_" and 9
# random characters, enough to tell keys apart without revealing one
KEY_PREFIX_CHARS = 12


class Role(str, enum.Enum):
    admin = "admin"  # enroll, delete, and everything a client may do
    client = "client"  # verify, identify, read persons

    def allows(self, needed: "Role") -> bool:
        return self is Role.admin or needed is Role.client


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def same_digest(a: str, b: str) -> bool:
    """Constant-time equality of two hex digests (ASCII str, compared as they are)."""
    return hmac.compare_digest(a, b)
