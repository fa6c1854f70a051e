"""The product's service as site.toml describes it: stop, start and health-check commands.

Commands run without a shell (split like a shell would), so a path with spaces must be quoted in
site.toml. A site without ``[service]`` has nothing to stop or start: Stairway then touches only
the database, the data directory and the config files.

Stopping is not taken on trust: after the stop command, the product must be *shown* down (its
runner's process gone, its health URL no longer answering, no process holding the database file
or the data directory open) before anything is swapped under it. Starting is not either: the
health answer must name the release (and schema level) the site now holds when it names any,
so an old process still answering cannot pass for the new one.
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from stairway import faults, instances
from stairway.errors import ServiceStillUp, UpgradeError
from stairway.files import write_atomic
from stairway.holders import holders
from stairway.site import ServiceSection

COMMAND_TIMEOUT = 300.0
PID_FILE = ".stairway-service.pid"
STOP_GRACE = 30.0
# Set in the environment of every process the built-in runner starts: a runner killed between
# spawning the product and writing its pid file leaves an orphan that can still be found.
MARKER = "STAIRWAY_SERVICE_OF"


@dataclass(frozen=True)
class Expected:
    """What a health answer must say, when it says anything: the release and schema level."""

    release: str
    schema: int | None = None


@dataclass(frozen=True)
class Held:
    """What no process may hold open while a restore swaps it."""

    files: tuple[Path, ...] = ()
    directories: tuple[Path, ...] = ()
    home: Path | None = None  # the site file's directory: the built-in runner's pid file


def run_command(service: ServiceSection | None, which: str, home: Path | None = None) -> bool:
    """Run the ``stop`` or ``start`` command, once per instance the site names (its templates
    filled); False when the site declares none.

    Without one, a ``run`` command is started and stopped by Stairway's own runner, its pid and
    log kept in ``home`` (the site file's directory).
    """
    ran = [_run_one(each, which, home) for each in instances.each(service)]
    return any(ran)


def _run_one(service: ServiceSection | None, which: str, home: Path | None) -> bool:
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


def stop(service: ServiceSection | None, held: Held) -> bool:
    """Stop the product and show it down; raises ServiceStillUp (exit 3) naming what is not."""
    before, after = faults.around("service-stop")
    faults.point(before)
    ran = run_command(service, "stop", held.home)
    faults.point(after)
    prove_down(service, held)
    return ran


def start(service: ServiceSection | None, home: Path | None) -> bool:
    """Run the ``start`` command for every instance; False when the site declares none."""
    before, after = faults.around("service-start")
    faults.point(before)
    ran = run_command(service, "start", home)
    faults.point(after)
    return ran


def prove_down(service: ServiceSection | None, held: Held) -> None:
    """Wait until nothing of the product is left up, at most ``[service] stop_timeout``."""
    timeout = service.stop_timeout if service else 0.0
    deadline = time.monotonic() + timeout
    while True:
        reasons = still_up(service, held)
        if not reasons:
            return
        if time.monotonic() >= deadline:
            raise ServiceStillUp(
                f"the product is still up {timeout:.0f} s after it was stopped: "
                + "; ".join(reasons),
                hint="stop it (check [service] stop in site.toml), then run the same command "
                "again; nothing was swapped",
            )
        time.sleep(0.1)


def still_up(service: ServiceSection | None, held: Held) -> list[str]:
    """What shows the product is up: its runner's process, a health answer, open files."""
    found = [f"pid {pid} ({_cmdline(pid)}) still runs it" for pid in _runner_pids(held.home)]
    for each in instances.each(service):
        url = each.health if each else None
        if url and _answers(url):
            found.append(f"{url} still answers")
    found += [h.describe() for h in holders(held.files, held.directories)]
    return found


def wait_healthy(
    service: ServiceSection | None, expected: Expected | None = None, home: Path | None = None
) -> bool:
    """Poll the health URL (each instance's) until it answers 2xx as ``expected`` (its release
    named where ``[service] health_release`` says, its schema level when its JSON names one);
    False when the site declares no health URL. A product the built-in runner started
    (``home``) that exits meanwhile fails at once, with the last lines of its log."""
    answered = [_wait_one(each, expected, home) for each in instances.each(service)]
    return all(answered)


def _wait_one(service: ServiceSection | None, expected: Expected | None, home: Path | None) -> bool:
    url = service.health if service else None
    if not url or service is None:
        return False
    timeout = service.health_timeout
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        _check_still_running(service, home)
        answer = _get(url)
        if answer.ok:
            wrong = mismatch(answer, expected, service.health_release)
            if wrong is None:
                return True
            last = wrong
        elif answer.status is not None:
            last = f"HTTP {answer.status}"
        else:
            last = answer.body.decode(errors="replace") or last
        time.sleep(0.2)
    raise UpgradeError(
        f"{url} did not answer healthy within {timeout:.0f} s ({last})",
        hint="check the product's log"
        + (
            f"; its health answer must name its release ({service.health_release})"
            if "does not name" in last
            else ""
        ),
    )


def _check_still_running(service: ServiceSection, home: Path | None) -> None:
    if home is None or service.start or not service.run or _runner_pids(home):
        return
    log = home / "service.log"
    try:
        lines = log.read_bytes()[-4096:].decode("utf-8", "replace").splitlines()[-5:]
    except OSError:
        lines = []
    said = "; ".join(line.strip() for line in lines if line.strip()) or "its log is empty"
    raise UpgradeError(
        f"the product exited after it was started; the end of {log}: {said}",
        hint="fix what its log says (check [service] run), then run the command again",
    )


@dataclass(frozen=True)
class Answer:
    """One answer of the health URL: status None when nothing answered (body says why)."""

    status: int | None
    body: bytes
    headers: dict[str, str]  # names lower-cased

    @property
    def ok(self) -> bool:
        """Whether the health URL answered 2xx."""
        return self.status is not None and 200 <= self.status < 300

    def json(self) -> Any:
        """The body parsed as JSON, or None when it is not JSON."""
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError:
            return None


def mismatch(answer: Answer, expected: Expected | None, source: str = "json:release") -> str | None:
    """Why a 2xx answer is not the release expected, or None when it is. The release must be
    named where ``source`` says (``json:KEY``, ``header:NAME``); ``none`` asks only the schema
    level, and only when the JSON answer names one."""
    if expected is None:
        return None
    said = answer.json()
    release = expected.release if source == "none" else _named_release(answer, said, source)
    if release is None:
        kind, _, name = source.partition(":")
        where = f"no `{name}` in its JSON" if kind == "json" else f"no {name} header"
        return f"it does not name its release ({where})"
    if str(release) != expected.release:
        return f"it answers as release {release}, not {expected.release}"
    schema = said.get("schema") if isinstance(said, dict) else None
    if expected.schema is not None and isinstance(schema, int) and schema != expected.schema:
        return f"it answers at schema {schema}, the database is at {expected.schema}"
    return None


def _named_release(answer: Answer, said: Any, source: str) -> Any:
    kind, _, name = source.partition(":")
    if kind == "header":
        return answer.headers.get(name.lower())
    if not isinstance(said, dict):
        return None
    return said.get(name, said.get("version") if name == "release" else None)


def ask_health(service: ServiceSection | None) -> Answer:
    """One health answer; status None and an empty body when the site declares no URL."""
    url = service.health if service else None
    return _get(url) if url else Answer(None, b"", {})


def _get(url: str) -> Answer:
    """One GET; status None (and why, as the body) when nothing answered."""
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            headers = {k.lower(): v for k, v in answer.headers.items()}
            return Answer(int(answer.status), answer.read(1 << 16), headers)
    except urllib.error.HTTPError as err:
        return Answer(int(err.code), b"", {})
    except (urllib.error.URLError, OSError) as err:
        return Answer(None, str(getattr(err, "reason", err)).encode(), {})
    except ValueError as err:  # a malformed URL never gets better
        raise UpgradeError(
            f"[service] health {url!r} is not a usable URL: {err}", hint="fix it in site.toml"
        ) from None


def _answers(url: str) -> bool:
    """Anything answering at all, even an error status, is a product still up."""
    return _get(url).status is not None


# --- the built-in runner (``[service] run``) ---------------------------------------------------


def _run_builtin(command: str, which: str, home: Path) -> None:
    pid_file = home / PID_FILE
    if which == "start":
        if _runner_pids(home):
            return  # already running
        write_atomic(pid_file, str(_spawn(shlex.split(command), home)).encode())
        return
    for pid in _runner_pids(home):
        _terminate(pid)
    pid_file.unlink(missing_ok=True)


def _runner_pids(home: Path | None) -> list[int]:
    """The runner's live processes for this site: its pid file's and any orphan it marked."""
    if home is None:
        return []
    found = set(_marked(home))
    pid_file = home / PID_FILE
    with contextlib.suppress(OSError, ValueError):
        pid = int(pid_file.read_text())
        if _alive(pid):
            found.add(pid)
    return sorted(found)


def _marked(home: Path) -> list[int]:
    wanted = f"{MARKER}={home}".encode()
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError):
            if wanted in (entry / "environ").read_bytes().split(b"\0") and _alive(int(entry.name)):
                found.append(int(entry.name))
    return found


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
        environment = {**os.environ, MARKER: str(home)}
        try:
            return os.posix_spawnp(argv[0], argv, environment, file_actions=actions, setsid=True)
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
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    """A dead process not yet reaped by its parent (another process's child) holds nothing."""
    try:
        fields = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return False
    return fields[0] == "Z"


def _cmdline(pid: int) -> str:
    try:
        raw = (Path("/proc") / str(pid) / "cmdline").read_bytes()
    except OSError:
        return "?"
    return " ".join(w.decode(errors="replace") for w in raw.rstrip(b"\0").split(b"\0"))[:200]
