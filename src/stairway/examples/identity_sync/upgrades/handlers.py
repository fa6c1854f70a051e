"""Transform handlers of identity-sync's object migrations."""

from __future__ import annotations


def split_host_port(document: dict[str, object]) -> dict[str, object]:
    """``"server": "ldap.example.org:636"`` becomes ``"host"`` and ``"port"``."""
    server = document.pop("server", None)
    if isinstance(server, str):
        host, _, port = server.rpartition(":")
        document["host"] = host or port
        document["port"] = int(port) if host and port.isdigit() else 389
    return document


def follow_renamed_connector(document: dict[str, object]) -> dict[str, object]:
    """A schedule names the connector type it drives: 2.0.0 calls "ldap" "ldap-v3"."""
    if document.get("connectorType") == "ldap":
        document["connectorType"] = "ldap-v3"
    return document
