"""Settings: one frozen, validated object built from the environment and passed in, never global."""

from __future__ import annotations

import math
import os
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from server.domain.money import SUPPORTED_CURRENCIES
from server.domain.text import SUPPORTED_LOCALES


class SettingsError(ValueError):
    """A setting is missing or invalid; the message names the environment variable."""


def _port(raw: str) -> int:
    value = int(raw)
    if not 1 <= value <= 65535:
        raise ValueError("must be between 1 and 65535")
    return value


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value <= 0:
        raise ValueError("must be a positive integer")
    return value


def _choice(*options: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if raw not in options:
            raise ValueError(f"must be one of {', '.join(options)}")
        return raw

    return parse


def _database_url(raw: str) -> str:
    # Operators paste plain PostgreSQL URLs; the async driver is an implementation detail.
    for plain in ("postgres://", "postgresql://"):
        if raw.startswith(plain):
            return "postgresql+asyncpg://" + raw[len(plain) :]
    if raw.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
        return raw
    raise ValueError("must start with sqlite+aiosqlite:// or postgresql+asyncpg://")


def _redis_url(raw: str) -> str | None:
    if raw == "":
        return None
    if urlsplit(raw).scheme not in ("redis", "rediss", "unix"):
        raise ValueError("must be a redis://, rediss:// or unix:// URL")
    return raw


def _public_url(raw: str) -> str:
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("must be an absolute http:// or https:// URL")
    return raw.rstrip("/")


def _optional_http_url(raw: str) -> str | None:
    return _public_url(raw) if raw else None


def _bucket(raw: str) -> str | None:
    if raw == "":
        return None
    if not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", raw):
        raise ValueError("must be a bucket name: 3-63 lowercase letters, digits, dots, hyphens")
    return raw


def _secret(raw: str) -> str:
    if len(raw) < 32:
        raise ValueError("must be at least 32 characters")
    return raw


def _optional_secret(raw: str) -> str | None:
    return _secret(raw) if raw else None


def _word_list(raw: str) -> tuple[str, ...]:
    return tuple(w.strip() for w in raw.split(",") if w.strip())


def _positive_float(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError("must be a number") from None
    if not 0 < value < math.inf:
        raise ValueError("must be a finite number greater than 0")
    return value


def _ice_servers(raw: str) -> tuple[str, ...]:
    urls = _word_list(raw)
    for url in urls:
        if not url.startswith(("stun:", "turn:", "turns:")):
            raise ValueError(f"{url!r} is not a stun:, turn: or turns: URL")
    return urls


def _log_level(raw: str) -> str:
    return _choice("DEBUG", "INFO", "WARNING", "ERROR")(raw.upper())


@dataclass(frozen=True, slots=True)
class Setting:
    """One environment variable: where it goes, how it is parsed and what it means."""

    env: str
    attr: str
    parse: Callable[[str], Any]
    default: str | None
    meaning: str


# The single list of settings: Settings.from_env reads it and the README table documents it
# (a test checks that every variable here appears in README.md).
SETTINGS: tuple[Setting, ...] = (
    Setting("SHOWROOM_HOST", "host", str, "127.0.0.1", "Interface the server listens on."),
    Setting("SHOWROOM_PORT", "port", _port, "8080", "TCP port the server listens on."),
    Setting(
        "SHOWROOM_PUBLIC_URL",
        "public_url",
        _public_url,
        None,
        "Absolute URL viewers reach the server at; used in printed links and to mark the guest "
        "cookie Secure when https. Default: http://HOST:PORT.",
    ),
    Setting(
        "SHOWROOM_DATA_DIR",
        "data_dir",
        Path,
        "data",
        "Directory for the SQLite database and the generated secret key.",
    ),
    Setting(
        "DATABASE_URL",
        "database_url",
        _database_url,
        None,
        "sqlite+aiosqlite:///PATH or postgresql+asyncpg://USER@HOST/DB (postgresql:// is "
        "accepted). Default: SQLite file DATA_DIR/showroom.db.",
    ),
    Setting(
        "REDIS_URL",
        "redis_url",
        _redis_url,
        "",
        "Redis for multi-node deployments. When set, /readyz also checks Redis. Empty: none.",
    ),
    Setting(
        "SHOWROOM_SECRET_KEY",
        "secret_key",
        _secret,
        None,
        "Server secret (32+ characters) signing guest cookies. Default: generated once and kept "
        "in DATA_DIR/secret.key. Every node of one deployment needs the same value.",
    ),
    Setting(
        "SHOWROOM_VIEWER_JWT_SECRET",
        "viewer_jwt_secret",
        _optional_secret,
        "",
        "Secret (32+ characters) shared with the brand, which signs viewer JWTs (HS256, claims "
        "sub, name, exp). Empty: viewer JWTs are refused and viewers join as guests.",
    ),
    Setting(
        "SHOWROOM_MAX_BODY_BYTES",
        "max_body_bytes",
        _positive_int,
        "1048576",
        "Largest JSON request body accepted; larger bodies answer 413.",
    ),
    Setting(
        "SHOWROOM_MAX_IMPORT_BYTES",
        "max_import_bytes",
        _positive_int,
        "10485760",
        "Largest product import file (CSV or JSON) accepted; larger files answer 413.",
    ),
    Setting(
        "SHOWROOM_MAX_UPLOAD_MB",
        "max_upload_mb",
        _positive_int,
        "500",
        "Largest video upload (MP4, MOV or WebM) accepted, in MiB; larger uploads answer 413.",
    ),
    Setting(
        "SHOWROOM_DEFAULT_CURRENCY",
        "default_currency",
        _choice(*sorted(SUPPORTED_CURRENCIES)),
        "HKD",
        "Currency of new shows, and of CSV import rows with no currency column.",
    ),
    Setting(
        "SHOWROOM_DEFAULT_LOCALE",
        "default_locale",
        _choice(*SUPPORTED_LOCALES),
        "zh-HK",
        "Locale of new shows when the request names none.",
    ),
    Setting(
        "SHOWROOM_BANNED_WORDS",
        "banned_words",
        _word_list,
        "",
        "Comma-separated words and phrases chat may not contain (case-insensitive).",
    ),
    Setting(
        "SHOWROOM_BANNED_WORDS_MODE",
        "banned_words_mode",
        _choice("mask", "block"),
        "mask",
        "mask: replace banned words with ＊; block: refuse the message.",
    ),
    Setting(
        "SHOWROOM_CHAT_BURST",
        "chat_burst",
        _positive_int,
        "5",
        "Chat messages a member may send at once before the rate limit applies.",
    ),
    Setting(
        "SHOWROOM_CHAT_PER_SECOND",
        "chat_per_second",
        _positive_float,
        "1",
        "Sustained chat messages per second per member, after the burst.",
    ),
    Setting(
        "SHOWROOM_FRAME_BACKLOG",
        "frame_backlog",
        _positive_int,
        "50",
        "Live-room packets waiting for one socket before it skips frames (and is told of the gap).",
    ),
    Setting(
        "SHOWROOM_MAX_PINS",
        "max_pins",
        _positive_int,
        "3",
        "Products a show may have pinned at once.",
    ),
    Setting(
        "SHOWROOM_RESERVATION_SECONDS",
        "reservation_seconds",
        _positive_int,
        "600",
        "How long a checkout holds its stock before the buyer confirms; then it returns.",
    ),
    Setting(
        "SHOWROOM_MAX_QUANTITY",
        "max_quantity",
        _positive_int,
        "10",
        "Most units of one product in one order.",
    ),
    Setting(
        "SHOWROOM_WEBHOOK_TIMEOUT_SECONDS",
        "webhook_timeout_seconds",
        _positive_float,
        "10",
        "Seconds a webhook receiver has to answer one attempt; slower counts as a failure.",
    ),
    Setting(
        "SHOWROOM_WEBHOOK_MAX_ATTEMPTS",
        "webhook_max_attempts",
        _positive_int,
        "8",
        "Attempts per webhook delivery before it is marked failed (an admin can retry it).",
    ),
    Setting(
        "SHOWROOM_WEBHOOK_RETRY_SECONDS",
        "webhook_retry_seconds",
        _positive_float,
        "5",
        "First retry delay of a failed webhook attempt; each next one doubles (with jitter, "
        "at most an hour).",
    ),
    Setting(
        "SHOWROOM_ENGAGEMENT_FLUSH_SECONDS",
        "engagement_flush_seconds",
        _positive_float,
        "5",
        "How often watch time, engagement and the points they earn are written (one "
        "transaction each time, with a checkpoint of the watching held back); a crash "
        "loses at most this much.",
    ),
    Setting(
        "SHOWROOM_WATCH_CREDIT_MINUTES",
        "watch_credit_minutes",
        _positive_int,
        "5",
        "Watch points (still per minute) are written a block of this many watched minutes "
        "at a time; the watching in between is checkpointed at every engagement write.",
    ),
    Setting(
        "SHOWROOM_ICE_SERVERS",
        "ice_servers",
        _ice_servers,
        "",
        "Comma-separated STUN/TURN URLs the media server uses to find its public address "
        "(empty: host candidates only, for a server with a public IP or a LAN).",
    ),
    Setting(
        "SHOWROOM_MEDIA_CONNECT_TIMEOUT",
        "media_connect_timeout",
        _positive_float,
        "30",
        "Seconds a WHIP or WHEP peer has to connect before its session is dropped.",
    ),
    Setting(
        "SHOWROOM_LOG_FORMAT",
        "log_format",
        _choice("text", "json"),
        "text",
        "text: one readable line per request; json: one JSON object per line.",
    ),
    Setting("SHOWROOM_LOG_LEVEL", "log_level", _log_level, "INFO", "DEBUG, INFO, WARNING, ERROR."),
    Setting(
        "SHOWROOM_S3_BUCKET",
        "s3_bucket",
        _bucket,
        "",
        "S3-compatible bucket that finished videos (clips, uploads, posters, replays) are "
        "copied to and served from. Credentials: the usual AWS_* variables. Empty: the data "
        "directory only.",
    ),
    Setting(
        "SHOWROOM_S3_ENDPOINT_URL",
        "s3_endpoint_url",
        _optional_http_url,
        "",
        "The bucket's endpoint, for S3-compatible services (MinIO, R2, OSS, COS). Empty: AWS.",
    ),
    Setting(
        "SHOWROOM_S3_REGION", "s3_region", str, "", "The bucket's region. Empty: AWS's default."
    ),
    Setting(
        "SHOWROOM_S3_PREFIX",
        "s3_prefix",
        str,
        "",
        "Prepended to every key (e.g. showroom/); a file's key is this plus its path in the "
        "data directory.",
    ),
    Setting(
        "SHOWROOM_S3_PUBLIC_URL",
        "s3_public_url",
        _optional_http_url,
        "",
        "Base URL the bucket is publicly read at (a CDN); files redirect to it plus the key. "
        "Empty: redirects to presigned URLs valid for an hour.",
    ),
)


@dataclass(frozen=True, slots=True)
class Settings:
    secret_key: str
    database_url: str
    public_url: str
    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = field(default_factory=lambda: Path("data"))
    redis_url: str | None = None
    viewer_jwt_secret: str | None = None
    max_body_bytes: int = 1_048_576
    max_import_bytes: int = 10_485_760
    max_upload_mb: int = 500
    default_currency: str = "HKD"
    default_locale: str = "zh-HK"
    banned_words: tuple[str, ...] = ()
    banned_words_mode: str = "mask"
    chat_burst: int = 5
    chat_per_second: float = 1.0
    frame_backlog: int = 50
    max_pins: int = 3
    reservation_seconds: int = 600
    max_quantity: int = 10
    webhook_timeout_seconds: float = 10.0
    webhook_max_attempts: int = 8
    webhook_retry_seconds: float = 5.0
    engagement_flush_seconds: float = 5.0
    watch_credit_minutes: int = 5
    ice_servers: tuple[str, ...] = ()
    media_connect_timeout: float = 30.0
    log_format: str = "text"
    s3_bucket: str | None = None
    s3_endpoint_url: str | None = None
    s3_region: str = ""
    s3_prefix: str = ""
    s3_public_url: str | None = None
    log_level: str = "INFO"

    @property
    def secure_cookies(self) -> bool:
        return self.public_url.startswith("https://")

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 1024 * 1024

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Parse every setting; the first invalid one raises SettingsError naming its variable."""
        env = os.environ if environ is None else environ
        known = {f.name for f in fields(cls)}
        values: dict[str, Any] = {}
        for setting in SETTINGS:
            assert setting.attr in known, setting.attr
            raw = env.get(setting.env, setting.default)
            if raw is None:
                continue
            try:
                values[setting.attr] = setting.parse(raw.strip())
            except ValueError as exc:
                reason = str(exc) if not str(exc).startswith("invalid literal") else "not a number"
                raise SettingsError(f"{setting.env}={raw!r}: {reason}") from None
        data_dir: Path = values.setdefault("data_dir", Path("data"))
        values.setdefault("database_url", f"sqlite+aiosqlite:///{data_dir / 'showroom.db'}")
        host = values.get("host", "127.0.0.1")
        host = f"[{host}]" if ":" in host else host  # an IPv6 address needs brackets in a URL
        values.setdefault("public_url", f"http://{host}:{values.get('port', 8080)}")
        if "secret_key" not in values:
            values["secret_key"] = _stored_secret(data_dir)
        return cls(**values)


def _stored_secret(data_dir: Path) -> str:
    """The generated secret kept beside the data, so a restart keeps guest cookies valid."""
    path = data_dir / "secret.key"
    try:
        stored = path.read_text().strip()
    except FileNotFoundError:
        stored = ""
    except OSError as exc:
        raise SettingsError(
            f"SHOWROOM_SECRET_KEY is unset and {path} is unreadable: {exc}"
        ) from None
    if len(stored) >= 32:
        return stored
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        value = secrets.token_urlsafe(48)
        # Created private: never readable by others, not even between write and chmod.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)  # a file that already existed keeps its mode through O_CREAT
        with os.fdopen(fd, "w") as key_file:
            key_file.write(value + "\n")
    except OSError as exc:
        raise SettingsError(
            f"SHOWROOM_SECRET_KEY is unset and {path} is unwritable: {exc}"
        ) from None
    return value
