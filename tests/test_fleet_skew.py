"""Version skew between the control plane and its agents: the window rule from plain lists, an
agent ahead flagged and one outside the window refused by a real server, and the upgrade's
check that the agents connected before it came back."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import insert
from websockets.sync.client import ClientConnection

from fleet_harness import CATALOG, Fleet, fleet_site, make_build
from stairway import agents_back
from stairway.catalog.loader import load_catalog
from stairway.database import engine_for
from stairway.errors import CatalogError
from stairway.fleet import states
from stairway.fleet.messages import Close, Hello
from stairway.fleet.skew import Skew, judge, lag, skew
from stairway.fleet.states import Event, State
from stairway.fleet.tables import agents_table, ensure_tables
from stairway.fleet.tokens import now
from stairway.plan import UpgradePlan
from stairway.steps import StepKind, plan_steps
from stairway.version_grammars import GrammarName
from stairway.versions import AgentWindow, Version
from test_fleet_hostile import close_code, enrolled, session

# --- the window rule, pure -------------------------------------------------------------------

SERIES = [(1, 0), (1, 1), (1, 2), (2, 0), (2, 1), (3, 0)]  # a catalog's minor series, in order
windows = st.builds(AgentWindow, st.one_of(st.none(), st.integers(0, len(SERIES))), st.booleans())


def version(series: tuple[int, int], patch: int) -> str:
    return f"{series[0]}.{series[1]}.{patch}"


@given(window=windows, server=st.integers(0, len(SERIES) - 1), back=st.integers(0, 5))
def test_an_agent_within_the_window_is_accepted_and_one_behind_it_refused(
    window: AgentWindow, server: int, back: int
) -> None:
    back = min(back, server)
    agent, served = version(SERIES[server - back], 0), version(SERIES[server], 3)
    verdict = judge(agent, served, window, SERIES)
    assert lag(agent, served, SERIES) == back
    inside = window.minors_behind is None or back <= window.minors_behind
    assert verdict.accepted == inside, verdict
    if not inside:
        assert verdict.refusal and f"{back} minor series behind" in verdict.refusal
        assert f"at most {window.minors_behind}" in verdict.refusal and "install" in verdict.refusal


@given(window=windows, server=st.integers(0, len(SERIES) - 2), ahead=st.integers(1, 5))
def test_an_agent_ahead_is_accepted_only_when_the_window_says_so_and_is_flagged(
    window: AgentWindow, server: int, ahead: int
) -> None:
    agent = version(SERIES[min(server + ahead, len(SERIES) - 1)], 0)
    served = version(SERIES[server], 0)
    verdict = judge(agent, served, window, SERIES)
    assert verdict.skew == Skew.AHEAD
    assert verdict.accepted == window.ahead
    assert judge(agent, served, None, SERIES).accepted  # no window: every release, flagged


@given(patch=st.integers(0, 50))
def test_a_patch_release_of_the_servers_series_is_inside_any_window(patch: int) -> None:
    strict = AgentWindow(minors_behind=0, ahead=False)
    assert judge(f"2.0.{patch}", "2.0.50", strict, SERIES).accepted
    assert skew("2.0.0", "2.0.0") == Skew.SAME


def test_a_lag_is_counted_over_the_catalogs_series_and_an_unreadable_release_refused() -> None:
    assert lag("1.2.0", "2.0.0", SERIES) == 1  # no release between 1.2 and 2.0
    assert lag("1.0.0", "2.0.0", []) == 1  # only the server's own series is known
    window = AgentWindow(minors_behind=1)
    refused = judge("banana", "2.0.0", window, SERIES)
    assert refused.skew == Skew.UNKNOWN and refused.refusal and "not a version" in refused.refusal
    assert not judge("banana", "2.0.0", None, SERIES).accepted  # no window: refused all the same


PRE = st.lists(st.from_regex(r"(0|[1-9][0-9]{0,2}|[a-z][a-z0-9]{0,5})", fullmatch=True), min_size=1)


@given(pre=PRE, behind=st.integers(0, 1))
def test_a_semver_pre_release_is_behind_its_release_and_placed_in_its_series(
    pre: list[str], behind: int
) -> None:
    agent = f"2.0.0-{'.'.join(pre)}" if not behind else f"1.2.0-{'.'.join(pre)}"
    strict = AgentWindow(minors_behind=0)
    verdict = judge(agent, "2.0.0", strict, SERIES, "semver")
    assert verdict.skew == Skew.BEHIND and lag(agent, "2.0.0", SERIES, "semver") == behind
    assert verdict.accepted == (not behind), verdict
    assert judge(agent, "1.0.0", AgentWindow(ahead=True), SERIES, "semver").skew == Skew.AHEAD


@pytest.mark.parametrize(
    ("agent", "grammar"), [("2.0.0rc1", "semver"), ("2.0", "semver"), ("2.0.0-rc.1.", "semver")]
)
def test_an_agent_release_not_of_the_catalogs_grammar_is_refused_naming_it(
    agent: str, grammar: GrammarName
) -> None:
    verdict = judge(agent, "2.0.0", None, SERIES, grammar)
    assert verdict.skew == Skew.UNKNOWN and verdict.refusal
    assert f"not a version of the catalog's {grammar} grammar" in verdict.refusal
    assert "8.2.1-rc.1" in verdict.refusal and "install the agent build of 2.0.0" in verdict.refusal


def test_ahead_is_a_state_of_its_own_and_a_disconnect_takes_it_offline() -> None:
    assert states.after("a", State.OFFLINE, Event.AHEAD) == State.AHEAD
    assert states.after("a", State.ONLINE, Event.AHEAD) == State.AHEAD
    assert states.after("a", State.AHEAD, Event.HELLO) == State.ONLINE
    assert states.after("a", State.AHEAD, Event.GONE) == State.OFFLINE
    assert states.after("a", State.AHEAD, Event.RELEASE_REFUSED) == State.REFUSED
    assert not states.allowed(State.AHEAD, Event.UPGRADE_SENT)


# --- a real control plane ---------------------------------------------------------------------

WINDOW = "agents = { minors_behind = 0, ahead = true }\n"


def windowed(fleet: Fleet, window: str = WINDOW) -> None:
    manifest = fleet.root / "catalog" / "stairway.toml"
    text = manifest.read_text()
    manifest.write_text(
        text.replace("agent_protocol = [1, 2]\n", f"agent_protocol = [1, 2]\n{window}")
    )


@contextmanager
def hello_from(fleet: Fleet, agent_id: str, release: str) -> Iterator[ClientConnection]:
    """A connection that said hello on ``release``; the caller reads the answer."""
    with session(fleet.port, enrolled(fleet, agent_id)) as socket:
        socket.send(Hello(agent_id=agent_id, version=release, protocol=1).wire())
        yield socket


# The rows are written under row locks, which PostgreSQL has and SQLite does not; one database
# keeps the server's start (most of the time here) to one.
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_an_agent_ahead_is_flagged_and_one_outside_the_window_is_refused_with_the_reason(
    tmp_path: Path, database_url: str
) -> None:
    with fleet_site(tmp_path, database_url) as fleet:
        windowed(fleet)
        fleet.start_server()
        with hello_from(fleet, "relay-new", "2.1.0") as ahead:
            assert json.loads(ahead.recv(timeout=10))["type"] == "welcome"
            with hello_from(fleet, "relay-old", "1.0.0") as behind:
                answer = json.loads(behind.recv(timeout=10))
                assert close_code(behind, 10) == Close.RELEASE_REFUSED
            rows = {row["agent_id"]: row for row in fleet.api("GET", "/api/agents")}
    assert answer["type"] == "refused"
    assert "1 minor series behind the server's 2.0.0" in answer["reason"]
    new, old = rows["relay-new"], rows["relay-old"]
    assert new["skew"] == "ahead" and new["state"] == "ahead" and new["connected"]
    assert "newer than the server's 2.0.0" in new["message"] and not new["drifted"]
    assert old["state"] == "refused" and old["skew"] == "behind" and not old["connected"]
    assert "at most 0" in old["message"] and "stairway agent install" in old["message"]


@contextmanager
def said_hello(port: int, credential: str, release: str) -> Iterator[ClientConnection]:
    """A connection of relay-old, enrolled with ``credential``, that said hello on ``release``."""
    with session(port, credential) as socket:
        socket.send(Hello(agent_id="relay-old", version=release, protocol=1).wire())
        yield socket


HOLD = 'agents = { minors_behind = 0, ahead = false, outside = "hold" }\n'


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_held_agent_stays_connected_gets_only_the_upgrade_into_the_window_then_is_online(
    tmp_path: Path, database_url: str
) -> None:
    with fleet_site(tmp_path, database_url) as fleet:
        windowed(fleet, HOLD)
        fleet.publish(make_build(tmp_path, "2.0.0"), "2.0.0")
        fleet.start_server()
        credential = enrolled(fleet, "relay-old")
        with said_hello(fleet.port, credential, "1.0.0") as held:
            assert json.loads(held.recv(timeout=10))["type"] == "welcome"
            row = fleet.agent_rows()["relay-old"]
            with pytest.raises(TimeoutError):  # a manual policy: nothing comes down
                held.recv(timeout=1.5)
            status = fleet.cli("status")
            sent = fleet.api("POST", "/api/agents/relay-old/upgrade")
            offer = json.loads(held.recv(timeout=10))
        with said_hello(fleet.port, credential, "2.0.0") as upgraded:
            assert json.loads(upgraded.recv(timeout=10))["type"] == "welcome"
            after = fleet.agent_rows()["relay-old"]
    assert row["state"] == "held" and row["connected"] and row["skew"] == "behind"
    assert "1 minor series behind the server's 2.0.0" in row["message"]
    assert "1.0.0: 1 (1 connected, 1 held)" in status and "held: relay-old (held: agent" in status
    assert sent["result"] == "upgrade to 2.0.0 sent to relay-old"
    assert offer["type"] == "upgrade" and offer["manifest"]["version"] == "2.0.0"
    assert after["state"] == "online" and after["message"] == ""


def semver_people(fleet: Fleet) -> None:
    """The people catalog as a product writing SemVer, its 2.0.0 accepting only its series."""
    manifest = fleet.root / "catalog" / "stairway.toml"
    text = manifest.read_text().replace(
        'name = "people"\n', 'name = "people"\nversions = "semver"\n'
    )
    manifest.write_text(text)
    windowed(fleet, "agents = { minors_behind = 0 }\n")


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_semver_catalogs_server_places_a_pre_release_agent_and_refuses_a_pep440_one(
    tmp_path: Path, database_url: str
) -> None:
    with fleet_site(tmp_path, database_url) as fleet:
        semver_people(fleet)
        fleet.start_server()
        with hello_from(fleet, "relay-rc", "2.0.0-rc.1") as candidate:
            assert json.loads(candidate.recv(timeout=10))["type"] == "welcome"
            with hello_from(fleet, "relay-x", "2.0.0-x.7.z") as other:  # not PEP 440 at all
                assert json.loads(other.recv(timeout=10))["type"] == "welcome"
                with hello_from(fleet, "relay-pep", "2.0.0rc1") as pep:
                    answer = json.loads(pep.recv(timeout=10))
                    assert close_code(pep, 10) == Close.RELEASE_REFUSED
                rows = fleet.agent_rows()
    assert answer["type"] == "refused"
    assert "'2.0.0rc1' is not a version of the catalog's semver grammar" in answer["reason"]
    for agent in ("relay-rc", "relay-x"):
        assert rows[agent]["state"] == "online" and rows[agent]["connected"], rows[agent]
        assert rows[agent]["skew"] == "behind" and rows[agent]["drifted"], rows[agent]
    assert rows["relay-pep"]["state"] == "refused" and not rows["relay-pep"]["connected"]


def test_a_held_agent_may_only_be_upgraded_and_a_hello_inside_the_window_frees_it() -> None:
    window = AgentWindow(minors_behind=0, hold=True)
    verdict = judge("1.0.0", "2.0.0", window, SERIES)
    assert verdict.accepted and verdict.held and "at most 0" in verdict.held
    assert judge("2.0.0", "2.0.5", window, SERIES) == judge("2.0.0", "2.0.5", None, SERIES)
    assert states.after("a", State.ONLINE, Event.HELD) == State.HELD
    assert states.after("a", State.HELD, Event.HELLO) == State.ONLINE
    assert states.after("a", State.HELD, Event.UPGRADE_SENT) == State.UPGRADING
    assert states.after("a", State.HELD, Event.GONE) == State.OFFLINE


def test_the_refusal_closes_with_its_own_code() -> None:
    assert Close.RELEASE_REFUSED == 4427 and Close.RELEASE_REFUSED != Close.PROTOCOL_REFUSED


# --- the upgrade's check that the agents came back --------------------------------------------


def test_agents_back_is_a_step_only_when_agents_were_connected() -> None:
    plan = UpgradePlan(Version("1.0.0"), Version("2.0.0"), 0, ())
    kinds = [s.kind for s in plan_steps(plan, agents=True)]
    assert kinds.index(StepKind.AGENTS) == kinds.index(StepKind.MAINTENANCE_OFF) + 1
    assert StepKind.AGENTS not in [s.kind for s in plan_steps(plan)]


def test_returned_counts_only_agents_heard_from_since_the_check_began() -> None:
    since = now()
    fresh, stale = (since + timedelta(seconds=1)).isoformat(), (since - timedelta(minutes=5))
    rows = [
        ("a", True, fresh),
        ("b", True, stale.isoformat()),
        ("c", False, fresh),
        ("d", True, fresh),
    ]
    found = agents_back.returned(["a", "b", "c"], rows, since)
    assert found.back == ("a",) and found.missing == ("b", "c") and found.connected == 2
    assert found.describe() == "1 of 3 agents back (2 connected); not back: b, c"


def test_the_step_names_the_agents_that_did_not_return_within_the_deadline(
    database_url: str,
) -> None:
    engine = engine_for(database_url)
    with engine.begin() as conn:
        ensure_tables(conn)
        for agent, on in (("back", True), ("gone", False)):
            row = {"agent_id": agent, "state": "online", "connected": on, "message": ""}
            conn.execute(insert(agents_table).values(**row, enrolled=now().isoformat()))
    ticks = iter(range(100))
    found = agents_back.wait_back(engine, ["back", "gone"], 3, clock=lambda: next(ticks))
    assert found.missing == ("back", "gone")  # neither heard from since the check began
    with engine.begin() as conn:
        conn.execute(
            agents_table.update().values(last_seen=(now() + timedelta(seconds=5)).isoformat())
        )
    found = agents_back.wait_back(engine, ["back", "gone"], 0)
    assert found.back == ("back",) and found.missing == ("gone",)


# --- the catalog ------------------------------------------------------------------------------


def test_the_catalog_reads_the_window_and_refuses_a_negative_lag(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog"
    shutil.copytree(CATALOG, catalog)
    manifest = catalog / "stairway.toml"
    text = manifest.read_text()
    declared = 'version = "2.0.0"\nschema = 1\n'
    manifest.write_text(text.replace(declared, f"{declared}{WINDOW}"))
    release = load_catalog(catalog).release(Version("2.0.0"))
    assert release.agents == AgentWindow(minors_behind=0, ahead=True)
    manifest.write_text(text.replace(declared, f"{declared}agents = {{ minors_behind = -1 }}\n"))
    with pytest.raises(CatalogError) as refused:
        load_catalog(catalog)
    assert "minors_behind" in refused.value.message and refused.value.hint
