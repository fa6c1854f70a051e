"""Bearer tokens: admin tokens, enrollment tokens, and the credential each agent gets.

A token reads ``swt_<kind>_<id>.<secret>``. Only the SHA-256 of the secret is stored, looked up
by the id and compared in constant time, so the database never holds a usable token. An
enrollment token is exchanged once per agent for that agent's own credential; it may be limited
in uses and in time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from sqlalchemy import Connection, insert, or_, select, update

from stairway.errors import Forbidden, Unauthorized
from stairway.fleet import revocations
from stairway.fleet.tables import tokens_table


class TokenKind(StrEnum):
    """What a token may do: administer the fleet, enroll an agent, or be one agent's credential."""

    ADMIN = "admin"
    ENROLL = "enroll"
    AGENT = "agent"


@dataclass(frozen=True)
class Token:
    """A token that was checked: its id, kind and label, and the agent it belongs to, if any."""

    id: str
    kind: TokenKind
    label: str
    agent_id: str | None


def issue(
    conn: Connection,
    kind: TokenKind,
    label: str,
    agent_id: str | None = None,
    uses: int | None = None,
    valid_for: timedelta | None = None,
) -> str:
    """A new token; the returned text is shown once and never stored."""
    token_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    expires = (now() + valid_for).isoformat() if valid_for else None
    conn.execute(
        insert(tokens_table).values(
            id=token_id,
            kind=kind.value,
            hash=_hash(secret),
            label=label,
            agent_id=agent_id,
            created=now().isoformat(),
            expires=expires,
            uses_left=uses,
            revoked=False,
        )
    )
    return f"swt_{kind.value}_{token_id}.{secret}"


def check(conn: Connection, presented: str | None, allowed: set[TokenKind]) -> Token:
    """The token behind ``presented``, or Unauthorized / Forbidden."""
    token_id, secret = _split(presented)
    row = conn.execute(select(tokens_table).where(tokens_table.c.id == token_id)).first()
    if row is None or not hmac.compare_digest(row.hash, _hash(secret)):
        raise Unauthorized("unknown token")
    if row.revoked:
        raise Unauthorized("revoked token")
    if row.expires and datetime.fromisoformat(row.expires) < now():
        raise Unauthorized("expired token")
    if row.uses_left is not None and row.uses_left <= 0:
        raise Unauthorized("used-up token")
    if TokenKind(row.kind) not in allowed:
        raise Forbidden(f"an {row.kind} token cannot do this")  # admin, enroll, agent
    return Token(row.id, TokenKind(row.kind), row.label, row.agent_id)


def spend(conn: Connection, token: Token) -> None:
    """One use of an enrollment token, taken atomically: of N concurrent requests holding a
    token with one use left, exactly one gets it and the others Unauthorized.

    The check and the decrement are one conditional UPDATE: PostgreSQL re-reads the row's
    ``uses_left`` once a concurrent spender commits, and SQLite's writers run one at a time,
    so the count never goes below zero.
    """
    c = tokens_table.c
    spent = conn.execute(
        update(tokens_table)
        .where(c.id == token.id, c.revoked.is_(False))
        .where(or_(c.uses_left.is_(None), c.uses_left > 0))
        .values(uses_left=c.uses_left - 1)  # NULL (unlimited) stays NULL
    )
    if spent.rowcount != 1:
        raise Unauthorized("used-up token")


def still_valid(conn: Connection, token: Token) -> bool:
    """Whether ``token`` was neither revoked nor expired since it was checked: what a live
    session asks before anything it says is recorded."""
    row = conn.execute(
        select(tokens_table.c.revoked, tokens_table.c.expires).where(tokens_table.c.id == token.id)
    ).first()
    if row is None or row.revoked:
        return False
    return not (row.expires and datetime.fromisoformat(row.expires) < now())


def revoke(conn: Connection, token_id: str) -> bool:
    """Revoke the token ``token_id``; False when there is no such token. Every replica closes
    the connections made with it (``stairway.fleet.revocations``)."""
    c = tokens_table.c
    found = conn.execute(select(c.agent_id).where(c.id == token_id)).first()
    if found is None:
        return False
    conn.execute(update(tokens_table).where(c.id == token_id).values(revoked=True))
    revocations.record(conn, [token_id], found.agent_id)
    return True


def revoke_agent(conn: Connection, agent_id: str) -> int:
    """Revoke every credential ``agent_id`` holds now; how many. Every replica closes their
    connections (a credential issued after this one is not touched)."""
    c = tokens_table.c
    live = select(c.id).where(c.agent_id == agent_id, c.revoked.is_(False))
    ids = list(conn.execute(live).scalars())
    if ids:
        conn.execute(update(tokens_table).where(c.id.in_(ids)).values(revoked=True))
        revocations.record(conn, ids, agent_id)
    return len(ids)


def now() -> datetime:
    """Now, in UTC: the clock every timestamp in the fleet's tables is taken from."""
    return datetime.now(UTC)


def _split(presented: str | None) -> tuple[str, str]:
    if not presented or not presented.startswith("swt_") or "." not in presented:
        raise Unauthorized("no bearer token, or not a Stairway token")
    head, secret = presented.split(".", 1)
    parts = head.split("_")
    if len(parts) != 3 or not parts[2] or not secret:
        raise Unauthorized("malformed token")
    return parts[2], secret


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
