"""TLS on the agent's side: which CA the control plane's certificate must chain to, and the
agent's own certificate when the server asks for one (mutual TLS).

The files are copied into the agent's home at enrollment (``server-ca.pem``, ``client.pem``,
``client.key``, the key readable by the agent's user only) so the home stays the one thing to
back up or move. One ``ssl.SSLContext`` serves the websocket, the build download and enrollment.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

from stairway.errors import UsageRefused
from stairway.files import write_atomic

CA_FILE = "server-ca.pem"
CERT_FILE = "client.pem"
KEY_FILE = "client.key"


@dataclass(frozen=True)
class AgentTLS:
    """The agent's TLS files: the CA to trust and its own certificate and key, each optional."""

    ca: Path | None = None  # PEM bundle the server's certificate must chain to; None: system CAs
    cert: Path | None = None  # the agent's certificate, for a server that requires one
    key: Path | None = None  # its private key

    @property
    def configured(self) -> bool:
        """Whether a CA or a certificate is given, which needs a ``wss://`` server."""
        return bool(self.ca or self.cert)

    def context(self) -> ssl.SSLContext:
        """The client context; a PEM file that does not load is refused with its name."""
        try:
            context = ssl.create_default_context(cafile=str(self.ca) if self.ca else None)
            if self.cert:
                context.load_cert_chain(self.cert, self.key)
        except (ssl.SSLError, OSError) as err:
            raise UsageRefused(
                f"cannot load the agent's TLS files: {err}",
                hint="--ca takes the PEM certificate of the CA that signed the server's "
                "certificate; --cert and --cert-key a PEM certificate and its unencrypted key",
            ) from None
        return context


def checked(server: str, ca: Path | None, cert: Path | None, key: Path | None) -> AgentTLS:
    """The TLS options of ``agent enroll``, refused when they cannot work together."""
    tls = AgentTLS(ca, cert, key)
    if (cert is None) != (key is None):
        raise UsageRefused(
            "--cert and --cert-key go together",
            hint="give the agent's certificate and its private key, or neither",
        )
    if tls.configured and not server.startswith("wss://"):
        raise UsageRefused(
            f"TLS options given for {server}, which is not a wss:// address",
            hint="use --server wss://HOST:PORT for a control plane that serves TLS",
        )
    for path in (ca, cert, key):
        if path is not None and not path.is_file():
            raise UsageRefused(f"{path} does not exist", hint="give the PEM file's path")
    tls.context()  # refuses unreadable files now rather than at the agent's first connect
    return tls


def install_files(tls: AgentTLS, home: Path) -> dict[str, str]:
    """Copy the files into the agent's home, readable by its user only (``write_atomic`` creates
    them 0600, so the key is never readable by others, not even for a moment); the names to
    record in ``agent.json``."""
    names: dict[str, str] = {}
    for field, source, name in (
        ("ca", tls.ca, CA_FILE),
        ("cert", tls.cert, CERT_FILE),
        ("cert_key", tls.key, KEY_FILE),
    ):
        if source is not None:
            write_atomic(home / name, source.read_bytes())
            names[field] = name
    return names


def client_context(server: str, tls: AgentTLS) -> ssl.SSLContext | None:
    """None for a plain ws:// or http:// server: nothing to verify."""
    return tls.context() if server.startswith(("wss://", "https://")) else None
