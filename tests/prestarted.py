"""The ``stairway`` command run from a process that has already imported it.

The kill and full-disk matrices run the command hundreds of times, and each start spends most
of its CPU importing (about 0.9 s of 1.1 s). A prestarted process imports the CLI once and
forks a child per run: the child is a real process with its own pid, environment, working
directory and standard streams; it runs the command's ``main()`` and its exit handlers, exits
with the command's code, and dies of a SIGKILL like any other. What the matrices test is
unchanged; only the import, and the Click command Typer builds from the app, are shared.

Run as ``python prestarted.py SOCKET``, it serves; :func:`run` is the client side, with
``subprocess.run``'s result. The server forks from one thread only (its accept loop), and the
client side may be called from many threads.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

_lock = threading.Lock()
_server: tuple[subprocess.Popen[bytes], str] | None = None


# --- the client side ------------------------------------------------------------------------------


class Ran(subprocess.CompletedProcess[str]):
    """What ``subprocess.run`` answers, and the pid the command ran as."""

    def __init__(self, args: list[str], code: int, out: str, err: str, pid: int) -> None:
        super().__init__(args, code, out, err)
        self.pid = pid


def run(
    args: list[str], env: dict[str, str], timeout: float = 300, given: str | None = None
) -> Ran:
    """``stairway *args`` in a forked child of the prestarted process, as subprocess.run would
    with ``capture_output=True, text=True`` (and ``input=given``: its standard input, else
    nothing)."""
    address = _address()
    with tempfile.TemporaryDirectory(prefix="stairway-run-") as scratch:
        out, err, in_ = Path(scratch, "out"), Path(scratch, "err"), Path(scratch, "in")
        in_.write_text(given or "", "utf-8")
        request = {
            "args": args, "env": env, "cwd": os.getcwd(),
            "out": str(out), "err": str(err), "in": str(in_),
        }  # fmt: skip
        with socket.socket(socket.AF_UNIX) as conn:
            conn.settimeout(timeout)
            conn.connect(address)
            conn.sendall(orjson.dumps(request) + b"\n")
            reader = conn.makefile("rb")
            try:
                pid = int(reader.readline())
                code = int(reader.readline())
            except TimeoutError:
                with contextlib.suppress(OSError, UnboundLocalError):
                    os.kill(pid, signal.SIGKILL)
                raise subprocess.TimeoutExpired(args, timeout) from None
        said = out.read_text("utf-8", "replace"), err.read_text("utf-8", "replace")
        return Ran(["stairway", *args], code, *said, pid=pid)


def _address() -> str:
    """The socket of this process's prestarted server, started on first use."""
    global _server
    with _lock:
        if _server is None or _server[0].poll() is not None:
            address = str(Path(tempfile.mkdtemp(prefix="stairway-prestarted-"), "socket"))
            server = subprocess.Popen(
                [sys.executable, __file__, address],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                start_new_session=True,
            )
            _server = (server, address)
            atexit.register(_stop, server)
            _wait_for(address, server)
        return _server[1]


def _wait_for(address: str, server: subprocess.Popen[bytes]) -> None:
    for _ in range(600):
        if Path(address).exists():
            return
        if server.poll() is not None:
            raise RuntimeError(f"the prestarted stairway exited {server.returncode}")
        threading.Event().wait(0.05)
    raise RuntimeError("the prestarted stairway did not start in 30 s")


def _stop(server: subprocess.Popen[bytes]) -> None:
    server.terminate()
    with contextlib.suppress(subprocess.TimeoutExpired):
        server.wait(10)


# --- the server side ------------------------------------------------------------------------------


def serve(address: str) -> None:
    """Accept runs until terminated; each is forked, and its pid then its exit code answered."""
    from stairway import cli  # the import every run shares

    _share_command(cli.app)

    listener = socket.socket(socket.AF_UNIX)
    listener.bind(address + ".tmp")
    os.rename(address + ".tmp", address)  # the client waits for the name: bound and ready
    listener.listen(64)
    waiting: dict[int, socket.socket] = {}
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    while True:
        if selector.select(timeout=0.02):
            conn, _ = listener.accept()
            request = orjson.loads(conn.makefile("rb").readline())
            pid = os.fork()
            if pid == 0:
                listener.close()
                conn.close()
                _child(cli.main, request)
            conn.sendall(f"{pid}\n".encode())
            waiting[pid] = conn
        _answer_ended(waiting)


def _share_command(app: Any) -> None:
    """Build the Click command Typer makes of ``app`` once, here, for every child to use.

    Typer builds it on each call of the app, about 0.1 s of CPU: each run would pay it again.
    The command holds no state between calls, so a child runs exactly what it would have built.
    """
    import typer.main

    build = typer.main.get_command
    built = build(app)
    typer.main.get_command = lambda made: built if made is app else build(made)


def _answer_ended(waiting: dict[int, socket.socket]) -> None:
    while waiting:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        conn = waiting.pop(pid)
        with contextlib.suppress(OSError):
            conn.sendall(f"{code}\n".encode())
        conn.close()


def _child(main: Callable[[], None], request: dict[str, Any]) -> None:
    """Become the command: its environment, directory, streams and arguments; never returns."""
    code = 1
    try:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.environ.clear()
        os.environ.update(request["env"])
        os.chdir(str(request["cwd"]))
        for fd, name in ((1, "out"), (2, "err")):
            os.dup2(os.open(str(request[name]), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), fd)
        os.dup2(os.open(str(request["in"]), os.O_RDONLY), 0)
        sys.argv = ["stairway", *request["args"]]
        try:
            main()
            code = 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
            if isinstance(exit_.code, str):
                print(exit_.code, file=sys.stderr)
        atexit._run_exitfuncs()
    except BaseException:
        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    serve(sys.argv[1])
