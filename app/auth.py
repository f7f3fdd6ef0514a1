"""API keys: stored as SHA-256 hashes, checked per request, roles nested."""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app import audit
from app.db import DB_DOWN, utcnow
from app.errors import ApiError
from app.logs import EveryFewSeconds
from app.schemas.lines import LINE_ID
from app.tables import ApiKey

log = logging.getLogger(__name__)
ROLES = ("gateway", "viewer", "operator")
# What each role may do; an operator may do everything a gateway and a viewer may.
GRANTS = {"gateway": {"gateway"}, "viewer": {"viewer"},
          "operator": {"gateway", "viewer", "operator"}}


@dataclass(frozen=True)
class Principal:
    key_id: int
    name: str
    role: str
    lines: frozenset[str] | None = None  # a gateway key's lines; None: every line

    @property
    def actor(self) -> str:
        return f"key:{self.key_id}:{self.name}"


def hash_key(key: str) -> str:
    # Keys are 256-bit random tokens, so a plain SHA-256 is enough (no password stretching).
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(
    session: Session, *, role: str, name: str, actor: str, key: str | None = None,
    lines: list[str] | None = None,
) -> tuple[ApiKey, str]:
    """A new key (returned once, stored hashed), recorded in the audit trail as `actor`'s.
    `lines` limits a gateway key to posting those lines' windows: a gateway's key, if it
    leaks, then cannot feed other lines data that their next retrain would learn as normal.
    The lines need not exist yet (a key is often made before its line)."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, got {role!r}")
    key = key or "ll_" + secrets.token_urlsafe(32)
    row = ApiKey(name=name, role=role, key_hash=hash_key(key), prefix=key[:8],
                 lines=_checked_lines(role, lines))
    session.add(row)
    session.flush()
    details: dict[str, Any] = {"key_id": row.id, "role": role, "name": name}
    if row.lines is not None:
        details["lines"] = row.lines
    audit.record(session, actor=actor, action="key.create", **details)
    return row, key


def _checked_lines(role: str, lines: list[str] | None) -> list[str] | None:
    """A key's lines as stored (sorted, once each), or a ValueError saying what is wrong."""
    if lines is None:
        return None
    if role != "gateway":
        raise ValueError(f"only gateway keys are limited to lines; a {role} key sees every line")
    if not lines:
        raise ValueError("name at least one line (leave the limit out for every line)")
    if bad := [line for line in lines if not re.fullmatch(LINE_ID, line)]:
        raise ValueError(f"not a line id: {', '.join(map(repr, bad))} (1-64 of A-Z a-z 0-9 _ . -)")
    return sorted(set(lines))


def limit_key(session: Session, key_id: int, *, lines: list[str] | None, actor: str
              ) -> ApiKey | None:
    """Limit an existing gateway key to `lines` (None: every line again), as keys made before
    limits existed are: the gateway keeps its key. Takes effect within KEY_CACHE_S on every
    replica, as a revocation does. None where no such active key exists."""
    row = session.get(ApiKey, key_id)
    if row is None or row.revoked_at is not None:
        return None
    row.lines = _checked_lines(row.role, lines)
    audit.record(session, actor=actor, action="key.limit", key_id=key_id, lines=row.lines)
    _cache.pop(row.key_hash, None)  # immediate in this process
    return row


def may_post(who: Principal, line_id: str) -> None:
    """A 403 unless the key may post windows to the line. Checked before the line is read, so
    a limited key learns nothing of lines outside its list, not even whether they exist. Each
    refusal is a gateway set up wrong or a key where it should not be: logged."""
    if who.lines is not None and line_id not in who.lines:
        _refused.warn("key %d (%s) refused: it may not post to line %r, only to %s", who.key_id,
                      who.name, line_id, ", ".join(sorted(who.lines)))
        raise ApiError(403, "line_not_allowed",
                       f"this key may post windows to {', '.join(sorted(who.lines))} only, not "
                       f"{line_id!r}; use that line's gateway key, or ask an operator for one",
                       {"line_id": line_id, "lines": sorted(who.lines)})


def ensure_bootstrap_key(session: Session, key: str | None) -> None:
    """Create the operator key from the environment when no key exists yet. Replicas that
    start together all find none; the key hash is unique, so every insert but the first fails,
    and those replicas start with the key the first one made instead of crashing."""
    if not key or session.scalar(select(ApiKey.id).limit(1)) is not None:
        return
    try:
        create_key(session, role="operator", name="bootstrap", actor="service:bootstrap",
                   key=key)
        session.commit()
    except IntegrityError:
        session.rollback()
        if session.scalar(select(ApiKey.id).where(ApiKey.key_hash == hash_key(key))) is None:
            raise


# Valid keys are remembered this long per process, sparing a query per request; a revocation
# therefore takes effect within this many seconds on every replica.
KEY_CACHE_S = 10.0
# While the database cannot be asked, a key this process found valid this recently still
# counts, so that a gateway keeps its provisional scores through an outage (app/scorer.py):
# a gateway posting all along was checked seconds before it. A key revoked on another replica
# is refused here this long after this process last checked it; an unknown key gets the 503.
KEY_OUTAGE_S = 900.0
_cache: dict[str, tuple[float, Principal]] = {}
KEY_STAMP_EVERY = timedelta(minutes=10)
_refused = EveryFewSeconds(log, 10.0)  # `may_post` runs on the event loop: one thread


def authenticate(session: Session, authorization: str | None, need: str) -> Principal:
    return _grant(_lookup(session, _digest(authorization)), need)


def authenticate_cached(authorization: str | None, need: str) -> Principal | None:
    """The caller from the per-process cache, or None when the key needs a query (or the
    header is missing: `authenticate` then says why). Needs no session, so it can run on the
    event loop."""
    key = _bearer(authorization)
    who = _cached(hash_key(key)) if key is not None else None
    return None if who is None else _grant(who, need)


def _bearer(authorization: str | None) -> str | None:
    if authorization and authorization.lower().startswith("bearer "):
        return authorization[7:].strip()
    return None


def _digest(authorization: str | None) -> str:
    key = _bearer(authorization)
    if key is None:
        raise ApiError(401, "missing_api_key", "send 'Authorization: Bearer <api key>'; "
                       "keys come from 'lifeline keys create'")
    return hash_key(key)


def _grant(who: Principal, need: str) -> Principal:
    if need not in GRANTS[who.role]:
        raise ApiError(403, "forbidden", f"this needs the {need} role; the key has role {who.role}",
                       {"needed": need, "role": who.role})
    return who


def _cached(digest: str) -> Principal | None:
    hit = _cache.get(digest)
    return hit[1] if hit is not None and time.monotonic() - hit[0] < KEY_CACHE_S else None


def _lookup(session: Session, digest: str) -> Principal:
    if (who := _cached(digest)) is not None:
        return who
    try:
        row = session.scalar(select(ApiKey).where(ApiKey.key_hash == digest))
    except DB_DOWN:
        session.rollback()  # the session is usable again once the database answers
        hit = _cache.get(digest)
        if hit is None or time.monotonic() - hit[0] >= KEY_OUTAGE_S:
            raise
        return hit[1]
    if row is None or row.revoked_at is not None:
        _cache.pop(digest, None)
        raise ApiError(401, "invalid_api_key", "this API key is unknown or revoked")
    who = Principal(row.id, row.name, row.role,
                    frozenset(row.lines) if row.lines is not None else None)
    _cache[digest] = (time.monotonic(), who)
    _stamp(session, row)
    return who


def _stamp(session: Session, row: ApiKey) -> None:
    """When the key was last used, for an operator deciding which keys to revoke: written at
    most every KEY_STAMP_EVERY (a key's lookups come every KEY_CACHE_S per replica), and never
    at the request's cost: a database that will not take the write leaves the stamp behind."""
    now = utcnow()
    if row.last_used_at is not None and now - row.last_used_at < KEY_STAMP_EVERY:
        return
    try:
        session.execute(update(ApiKey).where(ApiKey.id == row.id).values(last_used_at=now))
        session.commit()
    except DB_DOWN:
        session.rollback()


def revoke_key(session: Session, key_id: int, *, actor: str) -> bool:
    row = session.get(ApiKey, key_id)
    if row is None or row.revoked_at is not None:
        return False
    row.revoked_at = utcnow()
    audit.record(session, actor=actor, action="key.revoke", key_id=key_id)
    _cache.pop(row.key_hash, None)  # immediate in this process; others within KEY_CACHE_S
    return True
