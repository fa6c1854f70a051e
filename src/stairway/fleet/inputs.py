"""What the admin API and the web UI accept, checked by Pydantic before anything runs."""

from __future__ import annotations

from pydantic import BaseModel, Field

from stairway.fleet.policy import Mode


class PolicyIn(BaseModel):
    """An upgrade policy as the operator sends it; the rollout's own fields are the server's."""

    mode: Mode
    percent: int = Field(default=10, ge=1, le=100)
    interval: float = Field(default=60.0, ge=0.05)
    canary: bool = False
    max_failures: int = Field(default=0, ge=0, le=100)


class EnrollIn(BaseModel):
    """An agent to enroll: its id, safe in URLs and logs, and an optional group such as a canary."""

    agent_id: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._:-]+$")
    group: str | None = Field(default=None, max_length=64)
