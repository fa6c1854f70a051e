"""A stand-in product service for upgrade tests: ``start`` runs a real HTTP server in the
background (its pid in a file), ``stop`` ends it. Usage: service_stub.py start|stop DIR PORT."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path


def main() -> None:
    action, folder, port = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    pid_file = folder / "service.pid"
    if action == "start":
        if pid_file.exists() and _alive(int(pid_file.read_text())):
            return  # already running: starting twice must not start a second one
        server = subprocess.Popen(
            [sys.executable, "-m", "http.server", port, "--bind", "127.0.0.1"],
            cwd=folder,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        pid_file.write_text(str(server.pid))
        (folder / "starts").open("a").write("start\n")
    elif pid_file.exists():
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid_file.read_text()), signal.SIGTERM)
        pid_file.unlink()
        (folder / "starts").open("a").write("stop\n")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


if __name__ == "__main__":
    main()
