"""Settings: every variable parsed and validated; an invalid one is named in the error."""

from __future__ import annotations

import dataclasses
import stat
from pathlib import Path
from typing import Any

import pytest

from server.config import SETTINGS, Settings, SettingsError

README = Path(__file__).resolve().parent.parent / "README.md"
KEY = "k" * 40


def env(tmp_path: Path, **values: str) -> dict[str, str]:
    return {"SHOWROOM_DATA_DIR": str(tmp_path), **values}


# --- defaults -----------------------------------------------------------------------------


def test_defaults(tmp_path: Path) -> None:
    settings = Settings.from_env(env(tmp_path))
    assert (settings.host, settings.port, settings.public_url) == (
        "127.0.0.1",
        8080,
        "http://127.0.0.1:8080",
    )
    assert settings.data_dir == tmp_path
    assert settings.database_url == f"sqlite+aiosqlite:///{tmp_path / 'showroom.db'}"
    assert settings.is_sqlite
    assert (settings.redis_url, settings.viewer_jwt_secret) == (None, None)
    assert (settings.max_body_bytes, settings.max_import_bytes) == (1_048_576, 10_485_760)
    assert (settings.max_upload_mb, settings.max_upload_bytes) == (500, 500 * 1024 * 1024)
    assert (settings.default_currency, settings.default_locale) == ("HKD", "zh-HK")
    assert (settings.banned_words, settings.banned_words_mode) == ((), "mask")
    assert (settings.chat_burst, settings.chat_per_second) == (5, 1.0)
    assert (
        settings.webhook_timeout_seconds,
        settings.webhook_max_attempts,
        settings.webhook_retry_seconds,
    ) == (10.0, 8, 5.0)
    assert (settings.log_format, settings.log_level) == ("text", "INFO")
    assert not settings.secure_cookies


def test_settings_is_frozen(tmp_path: Path) -> None:
    settings = Settings.from_env(env(tmp_path))
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.port = 1  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.secret_key = "x" * 40  # type: ignore[misc]
    assert settings.port == 8080


def test_documented_defaults_match_the_dataclass_defaults() -> None:
    """Each SETTINGS default string parses to the default Settings() would use directly."""
    defaults = {f.name: f for f in dataclasses.fields(Settings)}
    for setting in SETTINGS:
        assert setting.attr in defaults, setting.env
        if setting.default is None:
            continue
        declared = defaults[setting.attr]
        expected = (
            declared.default_factory()
            if declared.default_factory is not dataclasses.MISSING
            else declared.default
        )
        assert setting.parse(setting.default) == expected, setting.env


def test_every_setting_has_a_meaning() -> None:
    names = [s.env for s in SETTINGS]
    assert len(names) == len(set(names))
    assert len({s.attr for s in SETTINGS}) == len(SETTINGS)
    assert all(s.meaning.strip() for s in SETTINGS)


def test_environ_defaults_to_the_process_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for setting in SETTINGS:
        monkeypatch.delenv(setting.env, raising=False)
    monkeypatch.setenv("SHOWROOM_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SHOWROOM_PORT", "9123")
    settings = Settings.from_env()
    assert (settings.port, settings.data_dir) == (9123, tmp_path)


# --- every variable is read ---------------------------------------------------------------

VALID: list[tuple[str, str, str, Any]] = [
    ("SHOWROOM_HOST", "0.0.0.0", "host", "0.0.0.0"),
    ("SHOWROOM_PORT", "9000", "port", 9000),
    ("SHOWROOM_PUBLIC_URL", "https://live.example.com/", "public_url", "https://live.example.com"),
    ("SHOWROOM_DATA_DIR", "{tmp}/nested/data", "data_dir", "{tmp}/nested/data"),
    ("DATABASE_URL", "postgres://shop@db/showroom", "database_url", "postgresql+asyncpg://shop@db/showroom"),
    ("REDIS_URL", "redis://cache:6379/1", "redis_url", "redis://cache:6379/1"),
    ("SHOWROOM_SECRET_KEY", KEY, "secret_key", KEY),
    ("SHOWROOM_VIEWER_JWT_SECRET", "v" * 32, "viewer_jwt_secret", "v" * 32),
    ("SHOWROOM_MAX_BODY_BYTES", "2048", "max_body_bytes", 2048),
    ("SHOWROOM_MAX_IMPORT_BYTES", "4096", "max_import_bytes", 4096),
    ("SHOWROOM_MAX_UPLOAD_MB", "20", "max_upload_mb", 20),
    ("SHOWROOM_DEFAULT_CURRENCY", "JPY", "default_currency", "JPY"),
    ("SHOWROOM_DEFAULT_LOCALE", "en", "default_locale", "en"),
    ("SHOWROOM_BANNED_WORDS", " spam, scam ,,fake news ", "banned_words", ("spam", "scam", "fake news")),
    ("SHOWROOM_BANNED_WORDS_MODE", "block", "banned_words_mode", "block"),
    ("SHOWROOM_CHAT_BURST", "10", "chat_burst", 10),
    ("SHOWROOM_CHAT_PER_SECOND", "0.5", "chat_per_second", 0.5),
    ("SHOWROOM_FRAME_BACKLOG", "200", "frame_backlog", 200),
    ("SHOWROOM_MAX_PINS", "5", "max_pins", 5),
    ("SHOWROOM_RESERVATION_SECONDS", "120", "reservation_seconds", 120),
    ("SHOWROOM_MAX_QUANTITY", "3", "max_quantity", 3),
    ("SHOWROOM_WEBHOOK_TIMEOUT_SECONDS", "2.5", "webhook_timeout_seconds", 2.5),
    ("SHOWROOM_WEBHOOK_MAX_ATTEMPTS", "3", "webhook_max_attempts", 3),
    ("SHOWROOM_WEBHOOK_RETRY_SECONDS", "0.25", "webhook_retry_seconds", 0.25),
    ("SHOWROOM_ENGAGEMENT_FLUSH_SECONDS", "0.5", "engagement_flush_seconds", 0.5),
    ("SHOWROOM_WATCH_CREDIT_MINUTES", "2", "watch_credit_minutes", 2),
    ("SHOWROOM_ICE_SERVERS", "stun:stun.example.com:3478, turn:turn.example.com", "ice_servers",
     ("stun:stun.example.com:3478", "turn:turn.example.com")),
    ("SHOWROOM_MEDIA_CONNECT_TIMEOUT", "12.5", "media_connect_timeout", 12.5),
    ("SHOWROOM_LOG_FORMAT", "json", "log_format", "json"),
    ("SHOWROOM_LOG_LEVEL", "debug", "log_level", "DEBUG"),
    ("SHOWROOM_S3_BUCKET", "brand-videos", "s3_bucket", "brand-videos"),
    ("SHOWROOM_S3_ENDPOINT_URL", "https://oss-cn-hongkong.aliyuncs.com/", "s3_endpoint_url",
     "https://oss-cn-hongkong.aliyuncs.com"),
    ("SHOWROOM_S3_REGION", "ap-east-1", "s3_region", "ap-east-1"),
    ("SHOWROOM_S3_PREFIX", "showroom/", "s3_prefix", "showroom/"),
    ("SHOWROOM_S3_PUBLIC_URL", "https://cdn.example.com/v", "s3_public_url", "https://cdn.example.com/v"),
]  # fmt: skip


def test_valid_cases_cover_every_setting() -> None:
    assert sorted(v[0] for v in VALID) == sorted(s.env for s in SETTINGS)


@pytest.mark.parametrize(("variable", "raw", "attr", "expected"), VALID)
def test_each_variable_is_parsed(
    tmp_path: Path, variable: str, raw: str, attr: str, expected: Any
) -> None:
    raw = raw.replace("{tmp}", str(tmp_path))
    if isinstance(expected, str) and "{tmp}" in expected:
        expected = Path(expected.replace("{tmp}", str(tmp_path)))
    settings = Settings.from_env(env(tmp_path, **{variable: raw}))
    assert getattr(settings, attr) == expected


def test_values_are_parsed_together(tmp_path: Path) -> None:
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
    assert not settings.is_sqlite
    assert settings.redis_url == "redis://cache:6379/1"
    assert settings.public_url == "https://live.example.com" and settings.secure_cookies
    assert settings.log_level == "DEBUG" and settings.viewer_jwt_secret == "v" * 32


def test_values_are_trimmed(tmp_path: Path) -> None:
    settings = Settings.from_env(
        env(tmp_path, SHOWROOM_PORT=" 9000\n", SHOWROOM_LOG_FORMAT=" json ")
    )
    assert (settings.port, settings.log_format) == (9000, "json")


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("postgres://shop:pw@db:5432/showroom", "postgresql+asyncpg://shop:pw@db:5432/showroom"),
        ("postgresql://shop@db/showroom", "postgresql+asyncpg://shop@db/showroom"),
        ("postgresql+asyncpg://shop@db/showroom", "postgresql+asyncpg://shop@db/showroom"),
        ("sqlite+aiosqlite:////var/lib/showroom.db", "sqlite+aiosqlite:////var/lib/showroom.db"),
    ],
)
def test_database_url_normalisation(tmp_path: Path, raw: str, normalized: str) -> None:
    settings = Settings.from_env(env(tmp_path, DATABASE_URL=raw))
    assert settings.database_url == normalized
    assert settings.is_sqlite == normalized.startswith("sqlite")


def test_default_sqlite_database_lives_in_the_data_dir(tmp_path: Path) -> None:
    data = tmp_path / "var" / "showroom"
    settings = Settings.from_env(env(data))
    assert settings.database_url == f"sqlite+aiosqlite:///{data}/showroom.db"
    assert settings.database_url.startswith("sqlite+aiosqlite:////")  # an absolute path
    # A relative data dir gives a relative SQLite path; with a key set, nothing is written.
    relative = Settings.from_env({"SHOWROOM_DATA_DIR": "data", "SHOWROOM_SECRET_KEY": KEY})
    assert relative.database_url == "sqlite+aiosqlite:///data/showroom.db"


def test_empty_redis_url_means_none(tmp_path: Path) -> None:
    assert Settings.from_env(env(tmp_path, REDIS_URL="")).redis_url is None
    assert Settings.from_env(env(tmp_path, REDIS_URL="  ")).redis_url is None


@pytest.mark.parametrize("url", ["rediss://cache:6380/0", "unix:///run/redis.sock"])
def test_redis_url_schemes(tmp_path: Path, url: str) -> None:
    assert Settings.from_env(env(tmp_path, REDIS_URL=url)).redis_url == url


def test_empty_viewer_secret_means_none(tmp_path: Path) -> None:
    settings = Settings.from_env(env(tmp_path, SHOWROOM_VIEWER_JWT_SECRET="  "))
    assert settings.viewer_jwt_secret is None


# --- public URL ---------------------------------------------------------------------------


def test_public_url_defaults_from_host_and_port(tmp_path: Path) -> None:
    settings = Settings.from_env(env(tmp_path, SHOWROOM_HOST="0.0.0.0", SHOWROOM_PORT="9000"))
    assert settings.public_url == "http://0.0.0.0:9000"
    assert not settings.secure_cookies


@pytest.mark.parametrize(
    ("raw", "stored", "secure"),
    [
        ("https://live.example.com", "https://live.example.com", True),
        ("https://live.example.com/shop/", "https://live.example.com/shop", True),
        ("http://10.0.0.5:8080/", "http://10.0.0.5:8080", False),
    ],
)
def test_public_url_overrides_the_default(
    tmp_path: Path, raw: str, stored: str, secure: bool
) -> None:
    settings = Settings.from_env(env(tmp_path, SHOWROOM_PUBLIC_URL=raw, SHOWROOM_PORT="9000"))
    assert settings.public_url == stored
    assert settings.secure_cookies is secure


def test_public_url_default_brackets_an_ipv6_host(tmp_path: Path) -> None:
    settings = Settings.from_env(env(tmp_path, SHOWROOM_HOST="::1"))
    assert settings.public_url == "http://[::1]:8080"


# --- invalid values -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("SHOWROOM_PORT", "abc"),
        ("SHOWROOM_PORT", "70000"),
        ("SHOWROOM_PORT", "0"),
        ("SHOWROOM_PORT", "80.5"),
        ("SHOWROOM_PORT", ""),
        ("SHOWROOM_LOG_FORMAT", "xml"),
        ("SHOWROOM_LOG_LEVEL", "verbose"),
        ("DATABASE_URL", "mysql://x"),
        ("DATABASE_URL", "sqlite:///data/showroom.db"),
        ("DATABASE_URL", ""),
        ("SHOWROOM_SECRET_KEY", "short"),
        ("SHOWROOM_SECRET_KEY", "k" * 31),
        ("SHOWROOM_VIEWER_JWT_SECRET", "short"),
        ("REDIS_URL", "http://x"),
        ("REDIS_URL", "cache:6379"),
        ("SHOWROOM_MAX_BODY_BYTES", "0"),
        ("SHOWROOM_MAX_BODY_BYTES", "-5"),
        ("SHOWROOM_MAX_IMPORT_BYTES", "10MB"),
        ("SHOWROOM_MAX_UPLOAD_MB", "0"),
        ("SHOWROOM_MAX_UPLOAD_MB", "1.5"),
        ("SHOWROOM_S3_BUCKET", "Brand_Videos"),
        ("SHOWROOM_S3_BUCKET", "ab"),
        ("SHOWROOM_S3_ENDPOINT_URL", "minio:9000"),
        ("SHOWROOM_S3_PUBLIC_URL", "cdn.example.com"),
        ("SHOWROOM_PUBLIC_URL", "not-a-url"),
        ("SHOWROOM_PUBLIC_URL", "ftp://live.example.com"),
        ("SHOWROOM_PUBLIC_URL", "https://"),
        ("SHOWROOM_DEFAULT_CURRENCY", "XXX"),
        ("SHOWROOM_DEFAULT_CURRENCY", "hkd"),
        ("SHOWROOM_DEFAULT_LOCALE", "fr"),
        ("SHOWROOM_BANNED_WORDS_MODE", "drop"),
        ("SHOWROOM_CHAT_BURST", "0"),
        ("SHOWROOM_CHAT_PER_SECOND", "0"),
        ("SHOWROOM_CHAT_PER_SECOND", "-1"),
        ("SHOWROOM_CHAT_PER_SECOND", "nan"),
        ("SHOWROOM_CHAT_PER_SECOND", "fast"),
        ("SHOWROOM_FRAME_BACKLOG", "0"),
        ("SHOWROOM_FRAME_BACKLOG", "lots"),
        ("SHOWROOM_ICE_SERVERS", "stun.example.com:3478"),
        ("SHOWROOM_ICE_SERVERS", "stun:ok.example.com,http://turn.example.com"),
        ("SHOWROOM_MEDIA_CONNECT_TIMEOUT", "0"),
        ("SHOWROOM_MAX_PINS", "0"),
        ("SHOWROOM_RESERVATION_SECONDS", "-1"),
        ("SHOWROOM_MAX_QUANTITY", "many"),
        ("SHOWROOM_WEBHOOK_TIMEOUT_SECONDS", "0"),
        ("SHOWROOM_WEBHOOK_MAX_ATTEMPTS", "0"),
        ("SHOWROOM_WEBHOOK_MAX_ATTEMPTS", "2.5"),
        ("SHOWROOM_WEBHOOK_RETRY_SECONDS", "-1"),
        ("SHOWROOM_WEBHOOK_RETRY_SECONDS", "soon"),
        ("SHOWROOM_ENGAGEMENT_FLUSH_SECONDS", "0"),
        ("SHOWROOM_WATCH_CREDIT_MINUTES", "0"),
        ("SHOWROOM_WATCH_CREDIT_MINUTES", "2.5"),
    ],
)
def test_invalid_values_name_the_variable(tmp_path: Path, variable: str, value: str) -> None:
    with pytest.raises(SettingsError) as error:
        Settings.from_env(env(tmp_path, **{variable: value}))
    assert str(error.value).startswith(f"{variable}={value!r}: ")
    assert isinstance(error.value, ValueError)


def test_invalid_values_explain_the_rule(tmp_path: Path) -> None:
    def message(**values: str) -> str:
        with pytest.raises(SettingsError) as error:
            Settings.from_env(env(tmp_path, **values))
        return str(error.value)

    assert message(SHOWROOM_PORT="abc") == "SHOWROOM_PORT='abc': not a number"
    assert message(SHOWROOM_PORT="70000") == ("SHOWROOM_PORT='70000': must be between 1 and 65535")
    assert "json" in message(SHOWROOM_LOG_FORMAT="xml")
    assert "32 characters" in message(SHOWROOM_SECRET_KEY="short")
    assert "HKD" in message(SHOWROOM_DEFAULT_CURRENCY="XXX")


def test_invalid_value_does_not_write_a_secret(tmp_path: Path) -> None:
    with pytest.raises(SettingsError):
        Settings.from_env(env(tmp_path, SHOWROOM_PORT="abc"))
    assert not (tmp_path / "secret.key").exists()


# --- the generated secret key -------------------------------------------------------------


def test_generated_secret_is_kept_private_and_reused(tmp_path: Path) -> None:
    first = Settings.from_env(env(tmp_path)).secret_key
    assert len(first) >= 32
    key_file = tmp_path / "secret.key"
    assert key_file.read_text().strip() == first
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    written = key_file.stat().st_mtime_ns
    assert Settings.from_env(env(tmp_path)).secret_key == first
    assert key_file.stat().st_mtime_ns == written  # read, not rewritten
    assert Settings.from_env(env(tmp_path, SHOWROOM_SECRET_KEY=KEY)).secret_key == KEY


def test_generated_secrets_differ_between_data_dirs(tmp_path: Path) -> None:
    one = Settings.from_env(env(tmp_path / "one")).secret_key
    two = Settings.from_env(env(tmp_path / "two")).secret_key
    assert one != two


def test_missing_data_dir_is_created_for_the_secret(tmp_path: Path) -> None:
    data = tmp_path / "a" / "b"
    key = Settings.from_env(env(data)).secret_key
    assert (data / "secret.key").read_text().strip() == key


def test_explicit_secret_writes_no_file(tmp_path: Path) -> None:
    Settings.from_env(env(tmp_path, SHOWROOM_SECRET_KEY=KEY))
    assert not (tmp_path / "secret.key").exists()


def test_stored_secret_is_read_back(tmp_path: Path) -> None:
    (tmp_path / "secret.key").write_text("  " + "s" * 40 + "\n")
    assert Settings.from_env(env(tmp_path)).secret_key == "s" * 40


def test_too_short_stored_secret_is_replaced(tmp_path: Path) -> None:
    key_file = tmp_path / "secret.key"
    key_file.write_text("short\n")
    key = Settings.from_env(env(tmp_path)).secret_key
    assert len(key) >= 32 and key != "short"
    assert key_file.read_text().strip() == key
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_unusable_data_dir_names_the_secret_variable(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    with pytest.raises(SettingsError, match="SHOWROOM_SECRET_KEY") as error:
        Settings.from_env(env(not_a_dir))
    assert str(not_a_dir / "secret.key") in str(error.value)


# --- documentation ------------------------------------------------------------------------


def test_every_setting_is_documented_in_the_readme() -> None:
    """The README's settings table names every variable Settings.from_env reads."""
    readme = README.read_text(encoding="utf-8")
    missing = [s.env for s in SETTINGS if f"`{s.env}`" not in readme]
    assert missing == []
