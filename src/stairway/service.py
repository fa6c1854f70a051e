"""The product's service as site.toml describes it: stop, start and health-check commands.

Commands run without a shell (split like a shell would), so a path with spaces must be quoted in
site.toml. A site without ``[service]`` has nothing to stop or start: Stairway then touches only
the database, the data directory and the config files.
"""

from __future__ import annotations

import shlex
import subprocess
import time
import urllib.error
import urllib.request

from stairway.errors import UpgradeError
from stairway.site import ServiceSection

COMMAND_TIMEOUT = 300.0


def run_command(service: ServiceSection | None, which: str) -> bool:
    """Run the ``stop`` or ``start`` command; False when the site declares none."""
    command = getattr(service, which, None) if service else None
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


def wait_healthy(service: ServiceSection | None) -> bool:
    """Poll the health URL until it answers 2xx; False when the site declares none."""
    url = service.health if service else None
    if not url or service is None:
        return False
    timeout = service.health_timeout
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:
                if 200 <= answer.status < 300:
                    return True
                last = f"HTTP {answer.status}"
        except (urllib.error.URLError, OSError) as err:
            last = str(getattr(err, "reason", err))
        except ValueError as err:  # a malformed URL never gets better
            raise UpgradeError(
                f"[service] health {url!r} is not a usable URL: {err}", hint="fix it in site.toml"
            ) from None
        time.sleep(0.2)
    raise UpgradeError(
        f"{url} did not answer healthy within {timeout:.0f} s ({last})",
        hint="check the product's log; the upgrade is rolled back",
    )
