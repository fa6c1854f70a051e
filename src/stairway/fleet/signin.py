"""The web UI's sessions, and the one owner of ``stairway_ui_sessions``.

Signing in with an admin token opens a session: a random id that only the browser's cookie
holds (the table keeps its SHA-256, so the database never holds a usable session), the admin
token it was opened with, and the CSRF token every form of the session carries. A session ends
when it has been idle for ``Limits.idle``, ``Limits.lifetime`` after it was opened, when its
operator signs out, and at once when its admin token is revoked or expires: every look-up
reads the token's row with the session's. The sessions live in the site database, so replicas
over one database share them.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Select, delete, or_, select, update

from stairway.fleet.tables import tokens_table, ui_sessions_table
from stairway.fleet.tokens import Token, TokenKind, now

IDLE = timedelta(minutes=30)
LIFETIME = timedelta(hours=12)


@dataclass(frozen=True)
class Limits:
    """How long a session lives: ``idle`` after its last request, ``lifetime`` at most."""

    idle: timedelta = IDLE
    lifetime: timedelta = LIFETIME


@dataclass(frozen=True)
class Session:
    """A live session: the admin token it acts for and its forms' CSRF token."""

    id_hash: str
    token: Token
    csrf: str
    expires: datetime

    def seal(self, sentence: str) -> str:
        """A MAC of ``sentence`` under this session's secret: the page after a form shows a
        sentence only with its seal, so a link made elsewhere cannot put words on it."""
        return hmac.new(self.csrf.encode(), sentence.encode(), hashlib.sha256).hexdigest()[:32]

    def sealed(self, sentence: str, seal: str) -> bool:
        """Whether ``seal`` is this session's seal of ``sentence``."""
        return same(self.seal(sentence), seal)

    def csrf_matches(self, presented: str) -> bool:
        """Whether a form's ``presented`` CSRF token is this session's (in constant time)."""
        return same(self.csrf, presented)


@dataclass(frozen=True)
class Opened:
    """A session just opened, with its id: for the cookie, shown once and never stored."""

    session_id: str
    session: Session


def open_session(conn: Connection, token: Token, limits: Limits) -> Opened:
    """A new session for an admin ``token`` that was just checked; dead sessions are pruned."""
    prune(conn, limits)
    session_id, csrf, at = secrets.token_urlsafe(32), secrets.token_urlsafe(32), now()
    expires = at + limits.lifetime
    conn.execute(
        ui_sessions_table.insert().values(
            id_hash=_hash(session_id),
            token_id=token.id,
            created=stamp(at),
            last_seen=stamp(at),
            expires=stamp(expires),
            csrf=csrf,
        )
    )
    return Opened(session_id, Session(_hash(session_id), token, csrf, expires))


def find(
    conn: Connection, presented: str | None, limits: Limits, touch: bool = True
) -> Session | None:
    """The live session behind a cookie's ``presented`` id; None when there is none, it ran out,
    or its token no longer signs in (a dead one is deleted). With ``touch`` this request counts
    as activity; the agents table's refresh does not, so an open page still goes idle."""
    if not presented:
        return None
    row = conn.execute(_joined().where(ui_sessions_table.c.id_hash == _hash(presented))).first()
    if row is None:
        return None
    at = now()
    if not _alive(row, at, limits):
        _delete(conn, row.id_hash)
        return None
    if touch:
        sessions = ui_sessions_table.c
        conn.execute(
            update(ui_sessions_table)
            .where(sessions.id_hash == row.id_hash)
            .values(last_seen=stamp(at))
        )
    token = Token(row.id, TokenKind(row.kind), row.label, row.agent_id)
    return Session(row.id_hash, token, row.csrf, _moment(row.expires))


def end(conn: Connection, session: Session) -> None:
    """End ``session`` (its operator signed out)."""
    _delete(conn, session.id_hash)


def prune(conn: Connection, limits: Limits) -> int:
    """Delete the sessions that ran out or whose token was revoked; how many."""
    sessions, at = ui_sessions_table.c, now()
    revoked = select(tokens_table.c.id).where(tokens_table.c.revoked.is_(True))
    done = conn.execute(
        delete(ui_sessions_table).where(
            or_(
                sessions.expires < stamp(at),
                sessions.last_seen < stamp(at - limits.idle),
                sessions.token_id.in_(revoked),
            )
        )
    )
    return int(done.rowcount or 0)


def same(expected: str, presented: str) -> bool:
    """Whether two secrets are equal, in constant time (bytes: ``presented`` may be any text)."""
    return hmac.compare_digest(expected.encode(), presented.encode())


def stamp(at: datetime) -> str:
    """A timestamp as stored: ISO 8601 in UTC with microseconds always written, so that the
    text sorts as the time does and pruning can compare it in SQL."""
    return at.isoformat(timespec="microseconds")


def _delete(conn: Connection, id_hash: str) -> None:
    conn.execute(delete(ui_sessions_table).where(ui_sessions_table.c.id_hash == id_hash))


def _joined() -> Select[Any]:
    tokens, sessions = tokens_table.c, ui_sessions_table.c
    columns = (sessions.id_hash, sessions.csrf, sessions.last_seen, sessions.expires)
    token_columns = (tokens.id, tokens.kind, tokens.label, tokens.agent_id, tokens.revoked)
    return select(*columns, *token_columns, tokens.expires.label("token_expires")).join_from(
        ui_sessions_table, tokens_table, sessions.token_id == tokens.id
    )


def _alive(row: Any, at: datetime, limits: Limits) -> bool:
    token_valid = not row.revoked and row.kind == TokenKind.ADMIN.value
    if row.token_expires and _moment(row.token_expires) < at:
        token_valid = False
    last_seen, expires = _moment(row.last_seen), _moment(row.expires)
    return token_valid and at < expires and at < last_seen + limits.idle


def _moment(text: str) -> datetime:
    """A stored timestamp; one without a zone is UTC, one that cannot be read is long past (a
    session is rather ended than kept on a row that says nothing sure)."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()
