"""Oodaloo's settings, read once at start-up from the environment (and an optional `.env`).

Every value has an embedded default where one makes sense, so `oodaloo demo` runs with nothing set.
A bad value stops the process with a message naming the variable and what it expects.
"""

from __future__ import annotations

from functools import lru_cache
from importlib.util import find_spec
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

QBO_PRODUCTION_BASE_URL = "https://quickbooks.api.intuit.com"
QBO_DEVELOPMENT_BASE_URL = "https://sandbox-quickbooks.api.intuit.com"


class SettingsError(RuntimeError):
    """The environment holds a value Oodaloo cannot use; the message says which and why."""


#: Oodaloo's optional extras (pyproject.toml), each by the modules that show it is installed.
EXTRA_MODULES: dict[str, tuple[str, ...]] = {
    "postgres": ("asyncpg", "psycopg"),
    "redis": ("redis", "arq"),
    "sandbox": ("aiosmtpd", "websockets"),
}


def missing_extra(extra: str, needed_by: str) -> str | None:
    """One line saying that `needed_by` needs `extra` and how to install it, or None when the extra
    is installed."""
    absent = [module for module in EXTRA_MODULES[extra] if find_spec(module) is None]
    if not absent:
        return None
    return (
        f"{needed_by} needs the {extra} extra, which this installation lacks (no {', '.join(absent)}): "
        f"pip install 'oodaloo[{extra}]'"
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    database_url: str = Field(
        default="sqlite+aiosqlite:///./.oodaloo/oodaloo.db",
        description="SQLAlchemy async URL: sqlite+aiosqlite:///path.db or postgresql+asyncpg://user@host/db",
    )
    redis_url: str | None = Field(
        default=None,
        description="redis://host:port/db for the shared rate limiter, cache and locks; unset = in-process",
    )
    qbo_base_url: str = Field(
        default=QBO_PRODUCTION_BASE_URL,
        description="QuickBooks Online API host, the part before /v3",
    )
    qbo_client_id: str | None = None
    qbo_client_secret: str | None = None
    qbo_redirect_uri: str | None = None
    qbo_webhook_verifier_token: str | None = None
    public_url: str = Field(
        default="http://127.0.0.1:3000",
        description="where Slack, Intuit and email readers reach `oodaloo serve` (links and redirects are built on it)",
    )
    slack_bot_token: str | None = Field(default=None, description="xoxb- token: single-workspace mode")
    slack_signing_secret: str | None = Field(default=None, description="verifies every request from Slack")
    slack_app_token: str | None = Field(default=None, description="xapp- token: Socket Mode for development")
    slack_client_id: str | None = Field(default=None, description="multi-workspace install (OAuth) client id")
    slack_client_secret: str | None = None
    check_kept_reads: bool = Field(
        default=False,
        description="read the mirror again behind every digest served from memory and fail on a "
        "difference (slower: finds a write that did not change the books' version)",
    )
    slack_api_url: str = Field(
        default="https://slack.com/api/", description="Slack's Web API; a local Slack in the demo and tests"
    )
    smtp_url: str | None = Field(default=None, description="smtp://user:pass@host:port for email digests")
    email_from: str = Field(default="Oodaloo <runway@oodaloo.local>", description="From: of the email digest")
    token_encryption_key: str | None = Field(
        default=None, description="Fernet key (urlsafe base64, 32 bytes) that encrypts QBO tokens at rest"
    )
    email_link_key: str | None = Field(
        default=None,
        description="secret(s) that sign the email's action links (comma-separated, newest first, to rotate)",
    )
    operator_token: str | None = Field(
        default=None,
        description="Authorization: Bearer token for /healthz's per-business detail; unset = nobody sees it",
    )
    worker_nice: Literal["idle"] | int = Field(
        default="idle",
        description="the CPU priority of `oodaloo worker`, so on a machine it shares with `oodaloo "
        "serve` Slack's acks come first: `idle` runs it only on CPU nothing else wants (Linux's "
        "SCHED_IDLE; elsewhere the lowest nice, 19), a number 0-19 lowers it that far (os.nice)",
    )
    migrate_on_start: bool | None = Field(
        default=None,
        description="whether `oodaloo serve`, `worker` and the operations migrate the database as they "
        "start; unset: yes on SQLite (one machine), no otherwise (run `oodaloo migrate` once per "
        "deploy, and the processes refuse a database that is behind)",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("database_url")
    @classmethod
    def _async_database_url(cls, value: str) -> str:
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError(
                "must be an async SQLAlchemy URL starting with sqlite+aiosqlite:// or postgresql+asyncpg://"
            )
        return value

    @field_validator("migrate_on_start", mode="before")
    @classmethod
    def _unset_when_empty(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        if value and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value or None

    @field_validator("qbo_base_url")
    @classmethod
    def _no_version_suffix(cls, value: str) -> str:
        value = value.rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL such as https://quickbooks.api.intuit.com")
        if value.endswith("/v3"):
            raise ValueError("is the host only: drop the trailing /v3")
        return value

    @field_validator("public_url", "slack_api_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL such as https://oodaloo.example.com")
        return value

    @field_validator("worker_nice", mode="before")
    @classmethod
    def _idle_or_nice(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().lower() == "idle":
            return "idle"
        text = str(value).strip()
        nice = int(text) if text.lstrip("-").isdigit() else None
        if nice is None or not 0 <= nice <= 19:
            raise ValueError("must be idle or a number from 0 to 19")
        return nice

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    def migrates_on_start(self) -> bool:
        """MIGRATE_ON_START, or when unset: SQLite migrates as it starts (one machine, and its
        write lock makes processes take turns), a database server is left to `oodaloo migrate`."""
        if self.migrate_on_start is not None:
            return self.migrate_on_start
        return self.database_url.startswith("sqlite")

    def missing_extra(self, *, redis: bool = True) -> str | None:
        """The line naming an extra these settings need that this install lacks, or None.
        `redis=False` for a command that never uses Redis (`oodaloo migrate`)."""
        if not self.database_url.startswith("sqlite"):
            missing = missing_extra("postgres", "DATABASE_URL names PostgreSQL, so Oodaloo")
            if missing:
                return missing
        if redis and self.redis_url:
            return missing_extra("redis", "REDIS_URL is set, so Oodaloo")
        return None

    def sqlite_path(self) -> Path | None:
        prefix = "sqlite+aiosqlite:///"
        if self.database_url.startswith(prefix):
            return Path(self.database_url[len(prefix) :])
        return None


def load_settings(**overrides: object) -> Settings:
    """Reads and validates the settings, turning pydantic's report into one plain message."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            variable = "_".join(str(part) for part in error["loc"]).upper()
            problems.append(f"  {variable}: {error['msg']}")
        raise SettingsError(
            "Oodaloo's configuration has a problem:\n" + "\n".join(problems) +
            "\nFix the environment variable (or .env) named above and start again."
        ) from None


@lru_cache(maxsize=1)
def settings() -> Settings:
    return load_settings()
