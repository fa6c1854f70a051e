"""Transform handlers of the people catalog."""

from __future__ import annotations


def split_host_port(document: dict[str, object]) -> None:
    """``url = "ldap://host:389"`` becomes ``host`` and ``port``."""
    url = str(document.pop("url"))
    host, _, port = url.removeprefix("ldap://").partition(":")
    document["host"] = host
    document["port"] = int(port or 389)
