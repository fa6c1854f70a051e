"""The admin API under ``/api``, health, Prometheus metrics and the agents' build downloads."""

from __future__ import annotations

from typing import Any

import anyio
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from stairway import audit
from stairway.errors import Unauthorized
from stairway.fleet import credentials, evaluator, store, tokens
from stairway.fleet.auth import Admin, AgentOrAdmin, Enroller, FleetDep, denied
from stairway.fleet.inputs import EnrollIn, PolicyIn
from stairway.fleet.policy import Policy, drifted
from stairway.fleet.skew import skew
from stairway.fleet.tokens import TokenKind

router = APIRouter()


@router.get("/health")
async def health(fleet: FleetDep) -> dict[str, str]:
    """``GET /health``: the server's release and replica; anyone may ask."""
    return {"status": "ok", "version": fleet.config.version, "replica": fleet.config.replica}


@router.get("/metrics")
async def metrics(fleet: FleetDep, _token: Admin) -> Response:
    """Prometheus' text format; an admin token, as any other read of the fleet's state."""
    body = await anyio.to_thread.run_sync(fleet.metrics.exposition)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


@router.get("/api/agents")
async def agents(fleet: FleetDep, _token: Admin) -> list[dict[str, Any]]:
    """``GET /api/agents``: every enrolled agent, each marked whether it is drifted and where its
    release stands against the server's (``skew``: same, behind, ahead); admin token."""
    rows = await fleet.db(store.all_agents)
    for row, evaluable in zip(rows, store.rows_from(rows), strict=True):
        config = fleet.config
        row["drifted"] = drifted(evaluable, config.version, config.grammar)
        row["skew"] = (
            skew(row["version"], config.version, config.grammar) if row["version"] else None
        )
    return rows


@router.post("/api/agents/{agent_id}/upgrade")
async def upgrade_one(agent_id: str, fleet: FleetDep, token: Admin) -> dict[str, str]:
    """``POST /api/agents/{agent_id}/upgrade``: send the server's build to one agent now; admin
    token. Answers what happened, or 404 for an unknown agent.
    """
    row = await fleet.db(lambda c: store.agent(c, agent_id))
    if row is None:
        raise HTTPException(404, f"no agent {agent_id}")
    return {"result": await fleet.upgrade(agent_id, f"admin:{token.label}")}


@router.get("/api/policy")
async def get_policy(fleet: FleetDep, _token: Admin) -> dict[str, Any]:
    """``GET /api/policy``: the upgrade policy and what the last tick did; admin token."""
    policy = await fleet.db(store.read_policy)
    return _shown(policy) | {"note": fleet.last_note}


@router.put("/api/policy")
async def put_policy(body: PolicyIn, fleet: FleetDep, token: Admin) -> dict[str, Any]:
    """``PUT /api/policy``: replace the upgrade policy (a halted rollout resumes); admin token."""
    return _shown(await fleet.set_policy(body, f"admin:{token.label}"))


@router.post("/api/policy/run")
async def run_now(fleet: FleetDep, token: Admin) -> dict[str, str]:
    """``POST /api/policy/run``: run one tick of the policy at once; admin token."""
    return {"note": await evaluator.run_now(fleet, f"admin:{token.label}")}


@router.post("/api/enroll")
async def enroll(
    body: EnrollIn, request: Request, fleet: FleetDep, token: Enroller
) -> dict[str, str]:
    """``POST /api/enroll``: enroll a new agent and answer its credential; an enrollment token.

    Each use of the token is taken atomically: a token with N uses enrolls N agents, however
    many ask at once. An agent id already enrolled is refused (409): an enrollment token
    creates agents, it does not take one over (``POST /api/agents/{agent_id}/credential``).
    """

    def issue(conn: Connection) -> str:
        tokens.spend(conn, token)
        if not store.enroll(conn, body.agent_id, body.group):
            raise AgentExists(body.agent_id)
        credential = tokens.issue(conn, TokenKind.AGENT, body.agent_id, agent_id=body.agent_id)
        audit.append(conn, "agent.enroll", {"agent": body.agent_id}, actor=token.label)
        return credential

    try:
        credential = await fleet.db(issue)
    except Unauthorized as err:  # used up while this request waited its turn
        await denied(fleet, request.url.path, err.message, request.client)
        raise HTTPException(401, "unauthorized", headers={"WWW-Authenticate": "Bearer"}) from None
    except (AgentExists, IntegrityError):
        said = (
            f"agent {body.agent_id} is already enrolled: an enrollment token enrolls new agents "
            "only; re-enroll it with its own credential, or have an administrator issue one"
        )
        raise HTTPException(409, said) from None
    return {"agent_id": body.agent_id, "credential": credential}


@router.post("/api/agents/{agent_id}/credential")
async def reenroll(
    agent_id: str, request: Request, fleet: FleetDep, token: AgentOrAdmin
) -> dict[str, str]:
    """``POST /api/agents/{agent_id}/credential``: a new credential for an enrolled agent, its
    earlier ones revoked and their connections closed; the agent's own credential, or an admin
    token. Audited as ``agent.reenroll``.
    """
    if token.kind == TokenKind.AGENT and token.agent_id != agent_id:
        reason = f"the credential of {token.agent_id} cannot re-enroll {agent_id}"
        await denied(fleet, request.url.path, reason, request.client)
        raise HTTPException(403, "forbidden")
    actor = agent_id if token.kind == TokenKind.AGENT else f"admin:{token.label}"
    credential = await fleet.db(lambda conn: credentials.reissue(conn, agent_id, actor))
    if credential is None:
        raise HTTPException(404, f"no agent {agent_id}")
    return {"agent_id": agent_id, "credential": credential}


@router.delete("/api/agents/{agent_id}/credential")
async def revoke(agent_id: str, fleet: FleetDep, token: Admin) -> dict[str, Any]:
    """``DELETE /api/agents/{agent_id}/credential``: revoke every credential of an agent; its
    connections close within a second on every replica; admin token. Audited as
    ``agent.revoke``; 404 for an unknown agent.
    """
    actor = f"admin:{token.label}"
    count = await fleet.db(lambda conn: credentials.revoke_all(conn, agent_id, actor))
    if count is None:
        raise HTTPException(404, f"no agent {agent_id}")
    return {"agent_id": agent_id, "revoked": count}


class AgentExists(Exception):
    """The agent id asked for is enrolled already."""


@router.get("/api/audit")
async def audit_log(fleet: FleetDep, _token: Admin) -> list[dict[str, Any]]:
    """``GET /api/audit``: every entry of the audit log, oldest first; admin token."""
    return [entry.__dict__ for entry in await fleet.db(audit.entries)]


@router.get("/artifacts/{name}")
async def artifact(name: str, fleet: FleetDep, _token: AgentOrAdmin) -> FileResponse:
    """``GET /artifacts/{name}``: a published agent build, or 404; an agent or admin token."""
    folder = fleet.config.builds
    path = folder / name if folder else None
    if path is None or "/" in name or name.startswith(".") or not path.is_file():
        raise HTTPException(404, "no such build")
    return FileResponse(path)


def _shown(policy: Policy) -> dict[str, Any]:
    return {**policy.__dict__, "mode": policy.mode.value}
