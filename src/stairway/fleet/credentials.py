"""An enrolled agent's credentials as a whole: re-issue them or revoke them all, audited.

The command line (``stairway tokens reissue|revoke --agent``) and the control plane's API
(``POST|DELETE /api/agents/{id}/credential``) both call these, inside their own transaction.
"""

from __future__ import annotations

from sqlalchemy import Connection

from stairway import audit
from stairway.fleet import store, tokens


def reissue(conn: Connection, agent_id: str, actor: str) -> str | None:
    """A new credential for the enrolled agent ``agent_id``, every earlier one revoked (one live
    credential per agent; every replica closes their connections); audited ``agent.reenroll``.
    None when no such agent is enrolled."""
    if store.agent(conn, agent_id) is None:
        return None
    tokens.revoke_agent(conn, agent_id)
    credential = tokens.issue(conn, tokens.TokenKind.AGENT, agent_id, agent_id=agent_id)
    audit.append(conn, "agent.reenroll", {"agent": agent_id}, actor=actor)
    return credential


def revoke_all(conn: Connection, agent_id: str, actor: str) -> int | None:
    """Revoke every credential of the enrolled agent ``agent_id``; how many were live. Audited
    ``agent.revoke``. None when no such agent is enrolled."""
    if store.agent(conn, agent_id) is None:
        return None
    count = tokens.revoke_agent(conn, agent_id)
    audit.append(conn, "agent.revoke", {"agent": agent_id, "credentials": count}, actor=actor)
    return count
