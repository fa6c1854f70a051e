"""The product's service as site.toml describes it: stop, start and health-check commands.

Commands run without a shell (split like a shell would), so a path with spaces must be quoted in
site.toml. A site without ``[service]`` has nothing to stop or start: Stairway then touches only
the database, the data directory and the config files.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from stairway.errors import UpgradeError
from stairway.files import write_atomic
from stairway.site import ServiceSection

COMMAND_TIMEOUT = 300.0


def run_command(service: ServiceSection | None, which: str, home: Path | None = None) -> bool:
    """Run the ``stop`` or ``start`` command; False when the site declares none.

    Without one, a ``run`` command is started and stopped by Stairway's own runner, its pid and
    log kept in ``home`` (the site file's directory).
    """
    command = getattr(service, which, None) if service else None
    if not command and service is not None and service.run and home is not None:
        _run_builtin(service.run, which, home)
        return True
    if not command:
        return False
    try:
        done = subprocess.run(
            shlex.split(command), capture_output=True, text=True, timeout=COMMAND_TIMEOUT
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        raise UpgradeError(
            f"the {which} command failed: {err}", hint=f"check [service] {which}"
        ) from None
    if done.returncode != 0:
        said = (done.stderr or done.stdout).strip().splitlines()
        raise UpgradeError(
            f"the {which} command exited {done.returncode}: {said[-1] if said else command}",
            hint=f"check [service] {which} in site.toml",
        )
    return True


PID_FILE = ".stairway-service.pid"
STOP_GRACE = 30.0


def _run_builtin(command: str, which: str, home: Path) -> None:
    pid_file = home / PID_FILE
    if which == "start":
        if pid_file.exists() and _alive(int(pid_file.read_text())):
            return  # already running
        write_atomic(pid_file, str(_spawn(shlex.split(command), home)).encode())
        return
    if not pid_file.exists():
        return
    pid = int(pid_file.read_text())
    _terminate(pid)
    pid_file.unlink(missing_ok=True)


def _spawn(argv: list[str], home: Path) -> int:
    """Start ``argv`` in its own session, output to ``service.log``; no Popen object is kept
    (the product outlives this process, and Popen would warn about that)."""
    log = os.open(home / "service.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        actions = [
            (os.POSIX_SPAWN_DUP2, log, 1),
            (os.POSIX_SPAWN_DUP2, log, 2),
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        ]
        cwd = os.getcwd()
        os.chdir(home)  # posix_spawn has no cwd argument before Python 3.13
        try:
            return os.posix_spawnp(
                argv[0], argv, dict(os.environ), file_actions=actions, setsid=True
            )
        finally:
            os.chdir(cwd)
    except OSError as err:
        raise UpgradeError(f"cannot run {argv[0]}: {err}", hint="check [service] run") from None
    finally:
        os.close(log)


def _terminate(pid: int) -> None:
    """SIGTERM, then SIGKILL once the grace period is over."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)  # reap it when it is our own child
        if waited == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_healthy(service: ServiceSection | None) -> bool:
    """Poll the health URL until it answers 2xx; False when the site declares none."""
    url = service.health if service else None
    if not url or service is None:
        return False
    timeout = service.health_timeout
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:
                if 200 <= answer.status < 300:
                    return True
                last = f"HTTP {answer.status}"
        except (urllib.error.URLError, OSError) as err:
            last = str(getattr(err, "reason", err))
        except ValueError as err:  # a malformed URL never gets better
            raise UpgradeError(
                f"[service] health {url!r} is not a usable URL: {err}", hint="fix it in site.toml"
            ) from None
        time.sleep(0.2)
    raise UpgradeError(
        f"{url} did not answer healthy within {timeout:.0f} s ({last})",
        hint="check the product's log; the upgrade is rolled back",
    )
