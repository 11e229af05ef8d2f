"""API keys in the database: create, check, list, revoke. Needs only the database, so
keys work from the first second of a start, before the model is loaded.

Only a key's SHA-256 and its first characters (to name it in listings) are stored. Every
check reads the database, so a revocation is effective at the next request.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from dataclasses import dataclass

from sqlalchemy import Engine, func, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from app.core.security import KEY_PREFIX_CHARS, Role, hash_key, new_key, same_digest
from app.storage.models import ApiKey

log = logging.getLogger("app.auth")
TOUCH_EVERY_S = 60.0  # last use is written at most once a minute per key, not per request


class KeyNotFound(LookupError):
    """No single active key matches (an operator's CLI error, never an HTTP one)."""


@dataclass(frozen=True)
class KeyInfo:
    prefix: str
    role: str
    created_at: dt.datetime | None
    last_used_at: dt.datetime | None
    revoked_at: dt.datetime | None

    @classmethod
    def of(cls, k: ApiKey) -> "KeyInfo":
        return cls(k.prefix, k.role, k.created_at, k.last_used_at, k.revoked_at)


class ApiKeyStore:
    def __init__(self, engine: Engine) -> None:
        self.sessions: sessionmaker[Session] = sessionmaker(engine, expire_on_commit=False)
        self._touched: dict[int, float] = {}  # key id -> monotonic time of the last write
        self._lock = threading.Lock()

    def create(self, role: Role) -> str:
        """A new key of `role`; the only time the whole key exists outside its owner."""
        key = new_key()
        self.add(key, role)
        return key

    def add(self, key: str, role: Role) -> None:
        with self.sessions() as s:
            s.add(ApiKey(key_hash=hash_key(key), prefix=key[:KEY_PREFIX_CHARS], role=role.value))
            s.commit()

    def role_of(self, key: str) -> Role | None:
        """The role of an active key, else None. Records the key's last use."""
        digest = hash_key(key)
        with self.sessions() as s:
            row = s.execute(select(ApiKey.id, ApiKey.key_hash, ApiKey.role)
                            .where(ApiKey.key_hash == digest, ApiKey.revoked_at.is_(None))).first()
            if row is None or not same_digest(row.key_hash, digest):
                return None
            if self._due(row.id):
                self._touch(s, row.id)
        return Role(row.role)

    def _touch(self, s: Session, key_id: int) -> None:
        """Record the key's last use. Bookkeeping only: a database that refuses writes (read-only,
        full, a read-only replica) must not turn the request it serves into an error, so a
        failed write is logged and the request goes on (it is tried again a minute later)."""
        try:
            s.execute(update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=func.now()))
            s.commit()
        except SQLAlchemyError as exc:
            try:
                s.rollback()
            except SQLAlchemyError:
                pass
            log.warning("could not record an API key's last use (%s); the request goes on",
                        type(getattr(exc, "orig", exc)).__name__)

    def _due(self, key_id: int) -> bool:
        now = time.monotonic()
        with self._lock:
            if now - self._touched.get(key_id, -TOUCH_EVERY_S) < TOUCH_EVERY_S:
                return False
            self._touched[key_id] = now
            return True

    def list(self, include_revoked: bool = False) -> list[KeyInfo]:
        query = select(ApiKey).order_by(ApiKey.id)
        if not include_revoked:
            query = query.where(ApiKey.revoked_at.is_(None))
        with self.sessions() as s:
            return [KeyInfo.of(k) for k in s.scalars(query)]

    def count_active(self, role: Role) -> int:
        with self.sessions() as s:
            return int(s.scalar(select(func.count()).select_from(ApiKey)
                                .where(ApiKey.role == role.value, ApiKey.revoked_at.is_(None))) or 0)

    def revoke(self, prefix: str) -> KeyInfo:
        """Revoke the one active key whose listed prefix is `prefix` (or starts with it)."""
        if len(prefix) < 6:
            raise KeyNotFound("Give at least 6 characters of the key's prefix")
        with self.sessions() as s:
            found = s.scalars(select(ApiKey).where(ApiKey.revoked_at.is_(None))
                              .where(ApiKey.prefix.startswith(prefix[:KEY_PREFIX_CHARS], autoescape=True))).all()
            if len(found) != 1:
                raise KeyNotFound(f"{len(found)} active keys start with {prefix!r}; "
                                         "give a longer prefix" if found else
                                         f"No active key starts with {prefix!r}")
            found[0].revoked_at = dt.datetime.now(dt.UTC)
            s.commit()
            return KeyInfo.of(found[0])
