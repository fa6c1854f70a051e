"""``python -m stairway.examples.identity_sync serve|start|stop --site FILE --port N``.

``start`` runs ``serve`` in the background (its pid beside site.toml) and returns; ``stop`` ends
it. These are the commands a demo site's ``[service]`` table names.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def main() -> None:
    """Serve identity-sync in the foreground, or start or stop it in the background."""
    parser = argparse.ArgumentParser(prog="identity-sync")
    parser.add_argument("action", choices=["serve", "start", "stop"])
    parser.add_argument("--site", type=Path, required=True)
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--version")
    parser.add_argument("--instance", help="one of several instances: its own pid and log")
    parser.add_argument(
        "--migrate-on-start",
        action="store_true",
        help="back up and migrate the database to this release at start; exit on failure",
    )
    args = parser.parse_args()
    name = f"identity-sync.{args.instance}" if args.instance else "identity-sync"
    pid_file = args.site.parent / f"{name}.pid"
    if args.action == "serve":
        _serve(args.site, args.port, args.version, args.migrate_on_start)
    elif args.action == "start":
        _start(args, pid_file)
    else:
        _stop(pid_file)


def _serve(site: Path, port: int, version: str | None, migrate_on_start: bool) -> None:
    # Loaded here: the stop and status commands of the same entry point run often and should
    # not pay for importing the web stack they never use.
    import uvicorn

    from stairway.examples.identity_sync.service import create_app

    # SIGTERM lets requests in flight finish before the process ends
    app = create_app(site, version, migrate_on_start)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=30)


def _start(args: argparse.Namespace, pid_file: Path) -> None:
    if _alive(_pid(pid_file)):
        return
    command = [sys.executable, "-m", "stairway.examples.identity_sync", "serve"]
    command += ["--site", str(args.site), "--port", str(args.port)]
    command += ["--version", args.version] if args.version else []
    command += ["--migrate-on-start"] if args.migrate_on_start else []
    log = pid_file.with_suffix(".log").open("ab")
    server = subprocess.Popen(command, stdout=log, stderr=log, start_new_session=True)
    try:
        _write_pid(pid_file, server.pid)
    except OSError:  # a full disk: a server nobody could stop must not be left running
        server.kill()
        server.wait()
        raise


def _write_pid(pid_file: Path, pid: int) -> None:
    """Whole or not at all: a torn pid file would leave the server without a way to stop it."""
    beside = pid_file.with_name(f".{pid_file.name}.new")
    try:
        beside.write_text(str(pid))
        os.replace(beside, pid_file)
    finally:
        beside.unlink(missing_ok=True)


def _pid(pid_file: Path) -> int:
    """The pid the file names; 0 when there is none (absent, or left empty by an older start)."""
    try:
        return int(pid_file.read_text())
    except (OSError, ValueError):
        return 0


def _stop(pid_file: Path) -> None:
    if not pid_file.exists():
        return
    pid = _pid(pid_file)
    with contextlib.suppress(ProcessLookupError):
        if pid:
            os.kill(pid, signal.SIGTERM)
        for _ in range(100):
            if not _alive(pid):
                break
            time.sleep(0.05)
    pid_file.unlink()


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # ended but not yet reaped by whoever adopted it: it holds nothing any more
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


if __name__ == "__main__":
    main()
