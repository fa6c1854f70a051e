"""What still serves a site on an older release: its instances (asked over their health URL)
and the agents connected to its control plane. Contract changes wait until none is left."""

from __future__ import annotations

import urllib.error
import urllib.request
from typing import Any

import orjson

from stairway.context import Context
from stairway.errors import StairwayError
from stairway.fleet import store as fleet_store
from stairway.instances import instances_of
from stairway.versions import Version


def old_ones(ctx: Context, target: str) -> list[str]:
    """Instances and connected agents still on a release older than ``target``."""
    wanted = ctx.catalog.version(target)
    found = []
    for instance in instances_of(ctx.site.service):
        health = instance.fill(ctx.site.service.health or "") if ctx.site.service else ""
        said = health_of(health) if health else None
        release = (said or {}).get("release")
        if release is not None and _older(str(release), wanted):
            found.append(f"instance {instance.number} ({instance.url}) runs {release}")
    found += [f"agent {a} runs {v}" for a, v in _old_agents(ctx, wanted)]
    return found


def agents_by_version(ctx: Context) -> list[tuple[str, int, int]] | None:
    """The agents enrolled with the site's control plane by release: (release, enrolled,
    connected), oldest first ("" for an agent not heard from yet); None when the site has no
    control plane's tables."""
    with ctx.engine.connect() as conn:
        return fleet_store.by_version(conn, ctx.catalog.versions)


def held_agents(ctx: Context) -> list[tuple[str, str, str]]:
    """The agents held outside the release's window of agent releases: (agent, release, why)."""
    with ctx.engine.connect() as conn:
        return fleet_store.held(conn)


def _old_agents(ctx: Context, wanted: Version) -> list[tuple[str, str]]:
    with ctx.engine.connect() as conn:
        agents = fleet_store.connected_versions(conn)
    return [(agent, version) for agent, version in agents if version and _older(version, wanted)]


def _older(version: str, wanted: Version) -> bool:
    try:
        return Version.parse(version, wanted.grammar) < wanted
    except StairwayError:
        return False


def health_of(url: str) -> dict[str, Any] | None:
    """What a health URL answers as JSON: None when it does not answer 2xx, {} when its body
    is not a JSON object."""
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            if not 200 <= answer.status < 300:
                return None
            body = answer.read()
    except (urllib.error.URLError, OSError, ValueError):
        return None
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}
