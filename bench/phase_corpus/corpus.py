"""The rendered corpus: one PostgreSQL SQL text per revision, rendered once per set of pins.

Rendering runs ``render_revisions.py`` in the corpus venv, with one scratch database per
project for the revisions that only render online; the result is cached as JSON under the
venv's home, keyed by the pins and the renderer's own text, and written by temporary name.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from bench.harness import HOST, PORT, USER, NotRun, admin_conninfo
from bench.phase_corpus.environment import CorpusVenv, home, pins_key
from stairway.schema.sqltext import SqlSyntaxError, split_statements

RENDERER = Path(__file__).with_name("render_revisions.py")
PROJECTS = ("prefect", "dagster", "mlflow")


@dataclass(frozen=True)
class Migration:
    """One revision's rendered upgrade; ``method`` is offline, online or failed;
    ``initial`` for the schema a project's runner builds before its first revision."""

    project: str
    revision: str
    file: str
    method: str
    sql: str
    error: str = ""

    @property
    def key(self) -> tuple[str, str]:
        return (self.project, self.revision)

    @property
    def emptiness(self) -> str:
        """Why the text is no PostgreSQL migration at all ("" when it is one).

        A revision for other databases, or one whose guards find no table on a scratch database,
        renders empty; a data migration there reads rows it then finds none of, and renders only
        SELECTs. Either would count as a safe migration that nothing was ever asked to judge.
        """
        if self.method == "failed":
            return ""
        if not self.sql.strip():
            return "rendered empty"
        return "renders only SELECTs" if _only_reads(self.sql) else ""

    @property
    def digest(self) -> str:
        """A short sha256 of the text: a label records it, so a changed render is noticed."""
        return text_digest(self.sql)


def _only_reads(sql: str) -> bool:
    try:
        statements = split_statements(sql)
    except SqlSyntaxError:
        return False  # unreadable text is left for the judges to refuse
    # The COMMIT and BEGIN around an autocommit block are no work of their own.
    words = [statement.text.split(maxsplit=1)[0].upper() for statement in statements]
    return all(word in ("SELECT", "COMMIT", "BEGIN") for word in words)


def text_digest(text: str) -> str:
    """The first 12 hex digits of ``text``'s sha256."""
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def cache_path() -> Path:
    """Where the corpus for these pins (and this renderer) is kept."""
    renderer = hashlib.sha256(RENDERER.read_bytes()).hexdigest()[:8]
    return home() / f"corpus-{pins_key()}-{renderer}.json"


def load_corpus(venv: CorpusVenv) -> list[Migration]:
    """The cached corpus, rendered first if there is none for these pins."""
    path = cache_path()
    if not path.exists():
        _render(venv, path)
    rows = json.loads(path.read_text(encoding="utf-8"))
    return [Migration(**row) for row in rows]


def _render(venv: CorpusVenv, path: Path) -> None:
    partial = path.with_suffix(".partial")
    with ExitStack() as stack:
        urls = [f"{p}={stack.enter_context(_scratch_database(p))}" for p in PROJECTS]
        done = subprocess.run(
            [str(venv.python), str(RENDERER), str(partial), *urls],
            capture_output=True,
            text=True,
            check=False,
        )
    if done.returncode != 0:
        raise NotRun(
            f"rendering the corpus failed: {done.stderr.strip()[-600:]}",
            hint=f"run {RENDERER.name} by hand with {venv.python} to see the whole error",
        )
    os.replace(partial, path)


@contextmanager
def _scratch_database(project: str) -> Iterator[str]:
    name = f"stairway_corpus_{project}_{os.getpid()}"
    _admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    _admin(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield f"postgresql+psycopg2://{USER}@{HOST}:{PORT}/{name}"
    finally:
        _admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _admin(statement: sql.Composed) -> None:
    # CREATE/DROP DATABASE refuse to run inside a transaction block.
    with psycopg.connect(admin_conninfo(), autocommit=True) as conn:
        conn.execute(statement)
