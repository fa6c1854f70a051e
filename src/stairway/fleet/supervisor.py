"""``stairway agent run``: keeps the current agent build running and rolls back a bad upgrade.

The supervisor starts ``current`` and watches it. While a trial is open (an upgrade the new
build has not yet confirmed by being welcomed by the server and passing its readiness check), a
build that exits, or one still unconfirmed at the trial's deadline, is stopped; ``current`` goes
back to the previous build, which is started again and tells the server, in its next hello,
which version failed and why: the server never welcomed it, or its readiness check failed.
An agent the server refused (exit 2) is not restarted; other exits are, with backoff.

When the agent serves connections (systemd passed a socket, or ``agent.json`` names ``listen``),
the supervisor holds the listening socket and hands it to every build it starts: a build it
stops (SIGTERM: it stops accepting and finishes its requests) leaves the connections that
arrive meanwhile in the socket's backlog for the build started next, the previous one after a
rollback. A build that re-executes itself keeps the same socket across the exec.
"""

from __future__ import annotations

import logging
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from stairway.fleet import listening
from stairway.fleet.agent import (
    EXIT_REFUSED,
    AgentConfig,
    Backoff,
    point_current,
    read_state,
    write_state,
)

log = logging.getLogger(__name__)


def supervise(home: Path, poll: float = 0.2) -> int:
    """Run the agent's ``current`` build until SIGTERM, rolling back a trial that fails.

    Returns:
        The exit status: 0 when stopped or when the agent exited cleanly, ``EXIT_REFUSED``
        when the server refused it; other exits are restarted with backoff.

    Raises:
        FleetError: The agent's ``listen`` address is malformed or cannot be bound, or a
            passed socket is not a listening one.
    """
    backoff = Backoff()
    listener = _listener(home)
    stopping = False

    def stop(_signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    while True:
        child = _start(home, listener)
        code = _watch(home, child, poll, lambda: stopping)
        if stopping:
            return 0
        trial = read_state(home).get("trial")
        if trial:
            _roll_back(home, trial, trial_failure(trial, code))
            continue
        if code in (0, EXIT_REFUSED):
            return code
        time.sleep(backoff.next())


def _listener(home: Path) -> socket.socket | None:
    try:
        address = AgentConfig.load(home).listen
    except (OSError, ValueError, TypeError):  # the build itself says what is wrong with its home
        address = None
    return listening.listen(address)


def _start(home: Path, listener: socket.socket | None) -> subprocess.Popen[bytes]:
    command = [sys.executable, str(home / "current"), "--home", str(home)]
    environment = listening.child_environment(listener)
    fds = () if listener is None else (listener.fileno(),)
    return subprocess.Popen(command, env=environment, pass_fds=fds)


def _watch(home: Path, child: subprocess.Popen[bytes], poll: float, stopping: Any) -> int:
    while (code := child.poll()) is None:
        time.sleep(poll)
        trial: dict[str, Any] = read_state(home).get("trial") or {}
        late = bool(trial) and time.time() > float(trial.get("deadline", 0))
        if stopping() or late:
            child.terminate()
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
            if late and not stopping():
                _roll_back(home, trial, trial_failure(trial, None))
                return -1
    return code


def trial_failure(trial: dict[str, Any], code: int | None) -> str:
    """Why a trial failed, from what the new build recorded: ``code`` is its exit status, or
    None when the deadline passed with it running."""
    checked = trial.get("readiness")
    if code is None and checked:
        return f"the new build was welcomed by the server but not ready by the deadline: {checked}"
    if code is None:
        return "the new build was not welcomed by the server within the deadline"
    if checked:
        return f"the new build exited with status {code} after it was welcomed; {checked}"
    return f"the new build exited with status {code} before it was welcomed"


def _roll_back(home: Path, trial: dict[str, Any], reason: str) -> None:
    previous = trial.get("previous")
    if previous:
        point_current(home, Path(previous))
    rolled_back = {"from": trial.get("from"), "to": trial.get("to"), "reason": reason}
    write_state(home, {"rolled_back": rolled_back})
    log.warning("agent upgrade to %s rolled back: %s", trial.get("to"), reason)
