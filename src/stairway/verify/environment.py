"""Findings on the environment the new release will run in: a program's version (Java), free
memory, free disk, the database engine and its version. midPoint's pre-upgrade checks refuse
unsupported configurations before anything is stopped; these are the catalog's ``[[check]]``
entries of an environment kind. Each probe only reads; one that cannot answer (a missing
program, a timeout, output without a version) is itself a finding with the check's severity,
since the upgrade cannot know the environment fits."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from packaging.version import InvalidVersion
from packaging.version import Version as _PkgVersion
from sqlalchemy import Engine

from stairway.catalog.manifest import CheckModel, parse_size, specifier
from stairway.context import Context
from stairway.verify.findings import Finding, FindingSeverity, Topic

VERSION_TOKEN = re.compile(r"(?<![\w.])\d+(?:\.\d+)*")  # 17, 17.0.2, 1.8.0 of "1.8.0_292"
GB = 1e9


def environment_finding(ctx: Context, check: CheckModel) -> Finding:
    """What the check found: an INFO finding when the environment fits, else the check's own
    severity (a critical one blocks) with its fix."""
    if check.kind == "command":
        return _command(check)
    if check.kind == "memory":
        return _against(check, "memory", free_memory(), parse_size(check.memory or 0))
    if check.kind == "disk":
        return _disk(ctx, check)
    return _database(ctx.engine, check)


def first_version(output: str) -> str | None:
    """The first version-looking token of ``output``: digits joined by dots."""
    found = VERSION_TOKEN.search(output)
    return found.group(0) if found else None


def meets(found: str, spec: str) -> bool:
    """Whether version ``found`` meets the PEP 440 specifier ``spec`` (pre-releases count)."""
    try:
        return specifier(spec).contains(_PkgVersion(found), prereleases=True)
    except InvalidVersion:
        return False


def free_memory() -> int | None:
    """Bytes of memory available to a new process (MemAvailable); None when it cannot be read."""
    try:
        with open("/proc/meminfo", encoding="ascii") as info:
            for line in info:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return None


def _command(check: CheckModel) -> Finding:
    argv, spec = check.argv, check.version or ""
    try:
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=check.timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except FileNotFoundError:
        return _failed(check, f"`{argv[0]}` was not found (the check needs {argv[0]} {spec})")
    except PermissionError:
        return _failed(check, f"`{argv[0]}` cannot be run: permission denied")
    except subprocess.TimeoutExpired:
        return _failed(check, f"`{' '.join(argv)}` did not answer within {check.timeout:g} s")
    except OSError as err:
        return _failed(check, f"`{argv[0]}` cannot be run: {err.strerror or err}")
    output = done.stdout + "\n" + done.stderr  # java -version writes to stderr
    if done.returncode != 0:
        line = next((t for t in output.splitlines() if t.strip()), "no output")
        return _failed(check, f"`{' '.join(argv)}` exited with {done.returncode}: {line.strip()}")
    found = first_version(output)
    if found is None:
        return _failed(check, f"`{' '.join(argv)}` printed no version")
    if meets(found, spec):
        return _fits(f"{check.name}: {argv[0]} {found} meets {spec}")
    return _failed(check, f"{argv[0]} {found} found, the release needs {spec}")


def _disk(ctx: Context, check: CheckModel) -> Finding:
    data_dir = ctx.site.site.data_dir
    path = Path(check.path or ".")
    if not path.is_absolute():
        if data_dir is None:
            return _failed(check, f"the disk at {path} is relative to data_dir, which is not set")
        path = data_dir / path
    try:
        free = shutil.disk_usage(_existing(path)).free
    except OSError as err:
        return _failed(check, f"cannot measure the disk at {path}: {err.strerror or err}")
    return _against(check, f"disk at {path}", free, parse_size(check.disk or 0))


def _against(check: CheckModel, what: str, free: int | None, needed: int) -> Finding:
    if free is None:
        return _failed(check, f"cannot read the free {what} on this host")
    said = f"{free / GB:,.1f} GB of free {what}, the release needs {needed / GB:,.1f} GB"
    if free >= needed:
        return _fits(f"{check.name}: {said}")
    return _failed(check, said)


def _database(engine: Engine, check: CheckModel) -> Finding:
    supported = {str(engine): spec for engine, spec in (check.database or {}).items()}
    with engine.connect() as conn:
        name = conn.dialect.name
        info = conn.dialect.server_version_info or ()
    found = ".".join(str(part) for part in info if isinstance(part, int))
    if name not in supported:
        listed = ", ".join(supported)
        return _failed(
            check, f"{name} {found} is not supported by the release (it supports {listed})"
        )
    spec = supported[name]
    if not spec or meets(found, spec):
        return _fits(f"{check.name}: {name} {found} meets {spec or 'any version'}")
    return _failed(check, f"{name} {found} found, the release needs {name} {spec}")


def _fits(message: str) -> Finding:
    return Finding(Topic.ENVIRONMENT, FindingSeverity.INFO, message)


def _failed(check: CheckModel, why: str) -> Finding:
    severity = FindingSeverity(check.severity)
    return Finding(
        Topic.ENVIRONMENT,
        severity,
        f"{check.name}: {why}",
        blocking=severity is FindingSeverity.CRITICAL,
        hint=check.hint or "make the host fit the release's requirement, then verify again",
    )


def _existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path
