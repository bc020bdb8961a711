"""The warehouse's versioned migrations: sql/migrations/NNNN_description.sql, read at synth time.

They are the single source of truth for the warehouse schema: the schema custom resource
(stacks/schema_handler/handler.py) applies the pending ones in order, each in its own transaction,
and records each in airline.schema_migrations with the checksum computed here. The Glue job is
told the latest version (its --warehouse_schema_version), which its load SQL needs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from stacks.schema_handler.handler import checksum as statements_checksum

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "sql" / "migrations"
FILE_NAME = re.compile(r"^(?P<version>\d{4})_(?P<description>[a-z0-9]+(?:_[a-z0-9]+)*)\.sql$")
# The Data API takes at most 40 statements per batch; the handler adds a LOCK, a guard and the
# schema_migrations INSERT to each migration.
MAX_STATEMENTS = 40 - 3


class MigrationError(ValueError):
    """sql/migrations/ is not a valid sequence of migrations; the message names the file."""


@dataclass(frozen=True)
class Migration:
    version: str  # "0001"
    description: str  # "initial schema"
    statements: tuple[str, ...]  # Redshift SQL, comments dropped
    path: Path

    @property
    def checksum(self) -> str:
        """sha256 of the statements as they run (the handler's own checksum, which it verifies):
        comments may be reworded, the SQL may not."""
        return statements_checksum(self.statements)

    def as_property(self) -> dict[str, object]:
        """The migration as the schema custom resource's properties carry it."""
        return {"Version": self.version, "Description": self.description, "Checksum": self.checksum,
                "Statements": list(self.statements)}


def split_sql_statements(text: str) -> list[str]:
    """Statements of a SQL script: `--` comments dropped, split on `;` outside quotes."""
    statements, current, quote = [], [], None
    for line in text.splitlines():
        i = 0
        while i < len(line):
            ch = line[i]
            if quote:
                current.append(ch)
                if ch == quote:
                    quote = None
            elif ch in ("'", '"'):
                quote = ch
                current.append(ch)
            elif line.startswith("--", i):
                break
            elif ch == ";":
                statements.append("".join(current))
                current = []
            else:
                current.append(ch)
            i += 1
        current.append("\n")
    statements.append("".join(current))
    return [s.strip() for s in statements if s.strip()]


def load_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """The migrations in version order; raises MigrationError for a misnamed file, a gap or a
    duplicate in the numbering, an empty file or one too long for a Data API batch."""
    migrations = []
    for path in sorted(directory.glob("*.sql")):
        match = FILE_NAME.match(path.name)
        if match is None:
            raise MigrationError(f"{path}: a migration is named NNNN_description.sql (lower case, digits, _)")
        statements = tuple(split_sql_statements(path.read_text(encoding="utf-8")))
        if not statements:
            raise MigrationError(f"{path}: no SQL statement")
        if len(statements) > MAX_STATEMENTS:
            raise MigrationError(f"{path}: {len(statements)} statements, at most {MAX_STATEMENTS} fit one Data API batch")
        migrations.append(Migration(match["version"], match["description"].replace("_", " "), statements, path))
    if not migrations:
        raise MigrationError(f"{directory}: no migration")
    for number, migration in enumerate(migrations, start=1):
        if int(migration.version) != number:
            raise MigrationError(f"{migration.path}: expected version {number:04d} (versions are 0001, 0002, ... "
                                 "without gaps or duplicates)")
    return migrations


def latest_version(directory: Path = MIGRATIONS_DIR) -> str:
    """The version the warehouse is at once every migration is applied (what the job needs)."""
    return load_migrations(directory)[-1].version
