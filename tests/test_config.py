"""Settings: every variable parsed and validated; an invalid one is named in the error."""

from __future__ import annotations

import dataclasses
import stat
from pathlib import Path

import pytest

from server.config import SETTINGS, Settings, SettingsError

README = Path(__file__).resolve().parent.parent / "README.md"


def env(tmp_path: Path, **values: str) -> dict[str, str]:
    return {"SHOWROOM_DATA_DIR": str(tmp_path), **values}


def test_defaults(tmp_path: Path) -> None:
    settings = Settings.from_env(env(tmp_path))
    assert (settings.host, settings.port, settings.public_url) == (
        "127.0.0.1",
        8080,
        "http://127.0.0.1:8080",
    )
    assert settings.database_url == f"sqlite+aiosqlite:///{tmp_path / 'showroom.db'}"
    assert (settings.redis_url, settings.viewer_jwt_secret, settings.default_currency) == (
        None,
        None,
        "HKD",
    )
    assert not settings.secure_cookies
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.port = 1  # type: ignore[misc]


def test_values_are_parsed(tmp_path: Path) -> None:
    settings = Settings.from_env(
        env(
            tmp_path,
            SHOWROOM_PORT="9000",
            DATABASE_URL="postgres://shop@db/showroom",
            REDIS_URL="redis://cache:6379/1",
            SHOWROOM_PUBLIC_URL="https://live.example.com/",
            SHOWROOM_LOG_LEVEL="debug",
            SHOWROOM_VIEWER_JWT_SECRET="v" * 32,
        )
    )
    assert settings.port == 9000
    assert settings.database_url == "postgresql+asyncpg://shop@db/showroom"
    assert settings.redis_url == "redis://cache:6379/1"
    assert settings.public_url == "https://live.example.com" and settings.secure_cookies
    assert settings.log_level == "DEBUG" and settings.viewer_jwt_secret == "v" * 32


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("SHOWROOM_PORT", "abc"),
        ("SHOWROOM_PORT", "70000"),
        ("SHOWROOM_LOG_FORMAT", "xml"),
        ("DATABASE_URL", "mysql://db/x"),
        ("SHOWROOM_SECRET_KEY", "short"),
        ("SHOWROOM_VIEWER_JWT_SECRET", "short"),
        ("REDIS_URL", "http://cache"),
        ("SHOWROOM_MAX_BODY_BYTES", "0"),
        ("SHOWROOM_PUBLIC_URL", "not-a-url"),
        ("SHOWROOM_DEFAULT_CURRENCY", "XXX"),
        ("SHOWROOM_DEFAULT_LOCALE", "fr"),
    ],
)
def test_invalid_values_name_the_variable(tmp_path: Path, variable: str, value: str) -> None:
    with pytest.raises(SettingsError) as error:
        Settings.from_env(env(tmp_path, **{variable: value}))
    assert str(error.value).startswith(f"{variable}=")


def test_generated_secret_is_kept_private_and_reused(tmp_path: Path) -> None:
    first = Settings.from_env(env(tmp_path)).secret_key
    assert len(first) >= 32
    key_file = tmp_path / "secret.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert Settings.from_env(env(tmp_path)).secret_key == first
    assert Settings.from_env(env(tmp_path, SHOWROOM_SECRET_KEY="k" * 40)).secret_key == "k" * 40


def test_every_setting_is_documented_in_the_readme() -> None:
    """The README's settings table names every variable Settings.from_env reads."""
    readme = README.read_text(encoding="utf-8")
    missing = [s.env for s in SETTINGS if f"`{s.env}`" not in readme]
    assert missing == []
