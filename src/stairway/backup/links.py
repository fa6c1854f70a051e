"""The data directory's symbolic links, recreated in its staging copy only where they stay in it.

The manifest's links were checked one by one before anything was written (``admission``); here
each is checked again on the real tree, the way the kernel will follow it: every component
resolved, links restored before it included (``s -> .`` then ``s/escape -> ../..``). A link is
placed only if its own location passes through no link and its target resolves inside the
tree; once all are placed every one is resolved again, since a later link can change where an
earlier one leads (``a -> b/..`` then ``b -> .``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

from stairway.errors import BackupError

HINT = "restore refuses links that leave the data directory; nothing was restored"


def restore_links(links: Mapping[str, str], staging: Path, backup_id: str) -> None:
    """Create ``links`` (relative name -> target) under ``staging``, all inside it, or refuse."""
    top = Path(os.path.realpath(staging))
    for name, pointee in links.items():
        _place(top, name, pointee, backup_id)
    for name in links:
        if not _resolved(top / PurePosixPath(name)).is_relative_to(top):
            raise _escapes(backup_id, name, links[name])


def _place(top: Path, name: str, pointee: str, backup_id: str) -> None:
    link = top / PurePosixPath(name)
    if _resolved(link.parent) != link.parent:
        raise BackupError(
            f"backup {backup_id}: the link data/{name} lies behind another link: refused",
            hint=HINT,
        )
    if os.path.lexists(link):
        raise BackupError(
            f"backup {backup_id}: the link data/{name} has the name of a file in the archive: "
            "refused",
            hint=HINT,
        )
    if not _resolved(link.parent / pointee).is_relative_to(top):
        raise _escapes(backup_id, name, pointee)
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(pointee)


def _resolved(path: Path) -> Path:
    """Every component resolved as the kernel would; parts not there yet are taken as named."""
    return Path(os.path.realpath(path))


def _escapes(backup_id: str, name: str, pointee: str) -> BackupError:
    return BackupError(
        f"backup {backup_id}: the link data/{name} points out of the data directory "
        f"({pointee!r}): refused",
        hint=HINT,
    )
