"""The listening socket of a process that serves connections, kept open across builds.

A build takes its socket in this order: from systemd's socket activation (``LISTEN_FDS`` and
``LISTEN_PID``, descriptors from 3, the one named by ``LISTEN_FDNAMES`` when a name is asked);
else the descriptor an earlier build or the supervisor left it, named by ``STAIRWAY_LISTEN_FD``;
else it binds a new one. Once taken, the socket is kept inheritable and named in
``STAIRWAY_LISTEN_FD``, so that an ``execv`` into the next build (same pid) and a build the
supervisor starts find it: the socket is never closed between builds, and the kernel queues
connections in its backlog while no build accepts them.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass

from stairway.errors import FleetError

INHERITED = "STAIRWAY_LISTEN_FD"  # the descriptor a build left to the next
SYSTEMD = ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")
FIRST_FD = 3  # SD_LISTEN_FDS_START: systemd passes its sockets from descriptor 3
BACKLOG = 1024  # connections the kernel holds while one build hands over to the next


@dataclass(frozen=True)
class Address:
    """Where a build listens when nothing hands it a socket: ``host:port``."""

    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> Address:
        """Read ``host:port`` (``[::1]:port`` for IPv6).

        Raises:
            FleetError: It is not a host and a port from 0 to 65535.
        """
        host, colon, port = text.rpartition(":")
        if not colon or not host or not port.isdigit() or int(port) > 65535:
            raise FleetError(
                f"cannot listen on {text!r}: not a host and a port",
                hint="give HOST:PORT, e.g. 127.0.0.1:8710 or [::1]:8710",
            )
        return cls(host.strip("[]"), int(port))


def systemd_fd(environ: Mapping[str, str], pid: int, name: str | None = None) -> int | None:
    """The descriptor systemd passed this process, or None when it passed none to it.

    ``LISTEN_PID`` must be ``pid`` (the variables may have been inherited from a parent they
    were meant for). With ``name`` and ``LISTEN_FDNAMES``, the socket of that name; otherwise
    the first.

    Raises:
        FleetError: ``name`` is not among ``LISTEN_FDNAMES``.
    """
    count = environ.get("LISTEN_FDS", "")
    if environ.get("LISTEN_PID") != str(pid) or not count.isdigit() or int(count) < 1:
        return None
    names = environ.get("LISTEN_FDNAMES", "").split(":")[: int(count)]
    if name is None or not environ.get("LISTEN_FDNAMES"):
        return FIRST_FD
    if name not in names:
        raise FleetError(
            f"systemd passed no socket named {name!r} (it passed {', '.join(names)})",
            hint=f"set FileDescriptorName={name} in the .socket unit",
        )
    return FIRST_FD + names.index(name)


def inherited_fd(environ: Mapping[str, str]) -> int | None:
    """The descriptor an earlier build or the supervisor left, or None."""
    text = environ.get(INHERITED, "")
    return int(text) if text.isdigit() else None


def take(name: str | None = None) -> socket.socket | None:
    """The socket systemd or an earlier build passed this process, kept for the next build;
    None when none was passed."""
    fd = systemd_fd(os.environ, os.getpid(), name)
    if fd is None:
        fd = inherited_fd(os.environ)
    return None if fd is None else keep_across_exec(_listening(fd))


def listen(address: str | None, name: str | None = None) -> socket.socket | None:
    """The socket passed to this process, else a new one bound to ``address``, else None.

    Raises:
        FleetError: ``address`` is not ``host:port`` or cannot be bound; a passed descriptor
            is not a listening stream socket.
    """
    passed = take(name)
    if passed is not None or address is None:
        return passed
    where = Address.parse(address)
    family = socket.AF_INET6 if ":" in where.host else socket.AF_INET
    try:
        bound = socket.create_server((where.host, where.port), family=family, backlog=BACKLOG)
    except OSError as err:
        raise FleetError(
            f"cannot listen on {address}: {err.strerror or err}",
            hint="choose a free address, or stop what listens there",
        ) from None
    return keep_across_exec(bound)


def keep_across_exec(listener: socket.socket) -> socket.socket:
    """Leave ``listener`` open across an ``execv`` and name it for the next build; systemd's
    variables are dropped, as ``sd_listen_fds(1)`` does, since they now speak of nothing."""
    listener.set_inheritable(True)
    for variable in SYSTEMD:
        os.environ.pop(variable, None)
    os.environ[INHERITED] = str(listener.fileno())
    return listener


def child_environment(listener: socket.socket | None) -> dict[str, str]:
    """The environment of a build the supervisor starts with ``listener`` (pass its descriptor
    in ``pass_fds``); without one, a copy of ours without any socket named."""
    environment = {k: v for k, v in os.environ.items() if k not in (*SYSTEMD, INHERITED)}
    if listener is not None:
        environment[INHERITED] = str(listener.fileno())
    return environment


def _listening(fd: int) -> socket.socket:
    try:
        passed = socket.socket(fileno=fd)
        listening = passed.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
    except OSError as err:
        raise FleetError(
            f"descriptor {fd}, passed as the listening socket, is not a socket: {err.strerror}",
            hint=f"unset {INHERITED} and LISTEN_FDS, or pass a listening socket",
        ) from None
    if passed.type != socket.SOCK_STREAM or not listening:
        passed.detach()  # not ours to close: it only is not what we were told
        raise FleetError(
            f"descriptor {fd}, passed as the listening socket, is not listening for streams",
            hint="pass a stream socket that listens (ListenStream= in the .socket unit)",
        )
    return passed
