"""The private venv holding the projects whose histories make the corpus, and squawk.

Their pins could clash with Stairway's, so they never go into the benchmark's own environment:
the venv lives outside the repository, is built once and reused.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from bench.harness import NotRun

# mlflow-skinny carries mlflow's migrations byte for byte without mlflow's ML stack; mlflow 3.18.0
# itself needs an mlflow-tracing release a PyPI mirror may lack.
PINS = (
    "prefect==3.9.1",
    "dagster==1.13.29",
    "mlflow-skinny==3.18.0",
    "squawk-cli==2.70.0",
    "psycopg2-binary",
)
HOME_ENV = "STAIRWAY_PHASE_CORPUS_HOME"
_DEFAULT_HOME = Path.home() / ".cache" / "stairway-bench" / "phase-corpus"


@dataclass(frozen=True)
class CorpusVenv:
    """Where the venv's Python and squawk are."""

    root: Path

    @property
    def python(self) -> Path:
        return self.root / "bin" / "python"

    @property
    def squawk(self) -> Path:
        return self.root / "bin" / "squawk"


def home() -> Path:
    """The cache directory (venv and rendered corpus); ``$STAIRWAY_PHASE_CORPUS_HOME`` moves it."""
    return Path(os.environ.get(HOME_ENV, str(_DEFAULT_HOME)))


def pins_key() -> str:
    """A short hash of the pinned versions: a rendered corpus is valid for exactly these."""
    return hashlib.sha256("\n".join(PINS).encode()).hexdigest()[:16]


def ensure_venv() -> CorpusVenv:
    """The venv, built on first use; ``NotRun`` (with what to do) when it cannot be built."""
    venv = CorpusVenv(home() / "venv")
    stamp = venv.root / "stairway-pins.txt"
    if stamp.exists() and stamp.read_text(encoding="utf-8") == pins_key():
        return venv
    _build(venv)
    stamp.write_text(pins_key(), encoding="utf-8")
    return venv


def _build(venv: CorpusVenv) -> None:
    commands = [
        [sys.executable, "-m", "venv", str(venv.root)],
        [str(venv.python), "-m", "pip", "install", "--quiet", *PINS],
    ]
    for command in commands:
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise NotRun(
                f"cannot build the corpus venv at {venv.root}: {done.stderr.strip()[-400:]}",
                hint=f"make {' '.join(PINS)} installable (a PyPI mirror or network), or build "
                f"the venv by hand at {venv.root} and write {pins_key()} to stairway-pins.txt",
            )
