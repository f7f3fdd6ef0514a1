"""Run Alembic migrations programmatically (start-up, CLI, tests)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from alembic.util import CommandError

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


class NewerDatabase(RuntimeError):
    """The database was migrated by a newer release than this one."""


def upgrade(url: str, revision: str = "head") -> None:
    cfg = alembic_config(url)
    try:
        command.upgrade(cfg, revision)
    except CommandError as exc:
        if "Can't locate revision" not in str(exc):
            raise
        newest = ScriptDirectory.from_config(cfg).get_current_head()
        raise NewerDatabase(
            f"the database was migrated by a newer release ({exc}); this release knows "
            f"revisions up to {newest}. To go back to this release, first run "
            f"`lifeline migrate {newest} --down` with the newer one, or deploy the newer one "
            "again") from None


def downgrade(url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(url), revision)
