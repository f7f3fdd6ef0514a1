"""`lifeline keys` against a real database."""

import pytest

from app import cli
from app.settings import get_settings


def test_keys_create_list_revoke(db_url: str, monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("LIFELINE_DATABASE_URL", db_url)
    get_settings.cache_clear()
    try:
        assert cli.main(["keys", "create", "--role", "gateway", "--name", "gw-7"]) == 0
        key = capsys.readouterr().out.strip().splitlines()[-1]
        assert key.startswith("ll_") and len(key) > 30
        assert cli.main(["keys", "list"]) == 0
        listing = capsys.readouterr().out
        assert "gateway\tgw-7" in listing and key not in listing and "active" in listing
        assert cli.main(["keys", "revoke", "1"]) == 0
        assert cli.main(["keys", "list"]) == 0 and "revoked" in capsys.readouterr().out
        assert cli.main(["keys", "revoke", "1"]) == 1
    finally:
        get_settings.cache_clear()
