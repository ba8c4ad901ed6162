"""Configuration: the YAML file validated into typed settings.

`load_config()` is the only entry point. Every problem becomes one `ConfigError` whose message names
the file, the key and what is wrong, e.g. ``clinicwatch.yaml: sites[1].url: not a valid URL: 'aurora'``.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from claims_db.codebook import CATEGORIES

CONFIG_ENV = "CLINICWATCH_CONFIG"
DEFAULT_CONFIG_NAME = "clinicwatch.yaml"
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class ConfigError(Exception):
    """A configuration file that cannot be used; the message says where and why."""


def parse_duration(value: Any) -> timedelta:
    """Parse ``90s``, ``30m``, ``6h``, ``1d``, ``2w`` (or a number of seconds) into a timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ValueError(f"not a duration: {value!r} (use e.g. 30m, 6h, 1d)")
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if seconds <= 0:
        raise ValueError(f"must be positive: {value!r}")
    return timedelta(seconds=seconds)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class SiteConfig(_Strict):
    """One clinic website to watch."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=100)
    url: str
    country: str | None = Field(default=None, pattern=r"^[A-Za-z]{2}$")
    lang: Literal["en", "ja", "zh"] | None = None
    max_pages: int = Field(default=200, ge=1, le=100_000)
    max_depth: int = Field(default=4, ge=0, le=50)
    interval: timedelta = timedelta(days=1)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        from urllib.parse import urlsplit

        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not a valid URL: {value!r} (expected http:// or https://)")
        return value.strip() if parts.path else value.strip() + "/"

    @field_validator("interval", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> timedelta:
        return parse_duration(value)

    @field_validator("country")
    @classmethod
    def _upper(cls, value: str | None) -> str | None:
        return value.upper() if value else value


class CrawlConfig(_Strict):
    """Politeness and limits shared by every site's crawl."""

    user_agent: str = "clinicwatch/0.1 (+https://github.com/clinicwatch/clinicwatch)"
    obey_robots: bool = True
    download_delay: float = Field(default=1.0, ge=0)
    concurrency_per_domain: int = Field(default=2, ge=1, le=32)
    timeout: float = Field(default=30.0, gt=0)
    retries: int = Field(default=2, ge=0, le=10)
    max_page_bytes: int = Field(default=5 * 1024 * 1024, ge=1024)
    crawl_timeout: timedelta = timedelta(hours=2)
    parallel_sites: int = Field(default=4, ge=1, le=32)

    @field_validator("crawl_timeout", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> timedelta:
        return parse_duration(value)


class SmtpConfig(_Strict):
    """How alert e-mails leave: an SMTP server. The password is read from `password_env`."""

    host: str = Field(min_length=1)
    port: int = Field(default=25, ge=1, le=65535)
    starttls: bool = False
    ssl: bool = False
    username: str | None = None
    password_env: str | None = None
    timeout: float = Field(default=30.0, gt=0)

    def password(self) -> str | None:
        """The SMTP password from the environment (never stored in the file)."""
        return os.environ.get(self.password_env) if self.password_env else None


class SubscriberConfig(_Strict):
    """Who receives alerts; optional filters narrow what they receive."""

    email: EmailStr
    sites: list[str] | None = None
    categories: list[str] | None = None

    @field_validator("categories")
    @classmethod
    def _known_categories(cls, value: list[str] | None) -> list[str] | None:
        for category in value or []:
            if category not in CATEGORIES:
                raise ValueError(f"unknown category {category!r} (known: {', '.join(CATEGORIES)})")
        return value


class AlertsConfig(_Strict):
    """Alert e-mails: SMTP server, sender, subscribers; `file_dir` writes .eml files instead."""

    smtp: SmtpConfig | None = None
    file_dir: Path | None = None
    sender: EmailStr = Field(default="clinicwatch@localhost", alias="from")
    subject_prefix: str = "[clinicwatch]"
    subscribers: list[SubscriberConfig] = []

    @model_validator(mode="after")
    def _transport_needed(self) -> AlertsConfig:
        if self.subscribers and self.smtp is None and self.file_dir is None:
            raise ValueError(
                "subscribers are listed but no smtp server is given "
                "(add smtp: {host: ..., port: ...}, or file_dir: to write e-mails to a folder)"
            )
        return self


class Config(_Strict):
    """The whole configuration file."""

    database: str = "sqlite:///clinicwatch.db"
    sites: list[SiteConfig] = []
    alerts: AlertsConfig = AlertsConfig()
    crawl: CrawlConfig = CrawlConfig()
    rules_dir: Path | None = None
    path: Path | None = Field(default=None, exclude=True)

    @field_validator("database")
    @classmethod
    def _database_url(cls, value: str) -> str:
        if "://" not in value:
            raise ValueError(
                f"not a database URL: {value!r} (e.g. sqlite:///clinicwatch.db or "
                "postgresql+psycopg://user@host/db)"
            )
        return value

    @model_validator(mode="after")
    def _unique_site_names(self) -> Config:
        seen: set[str] = set()
        for site in self.sites:
            if site.name in seen:
                raise ValueError(f"site name {site.name!r} is used twice; names must be unique")
            seen.add(site.name)
        for i, sub in enumerate(self.alerts.subscribers):
            for name in sub.sites or []:
                if name not in seen:
                    raise ValueError(
                        f"alerts.subscribers[{i}].sites: no site named {name!r} "
                        f"(sites: {', '.join(sorted(seen)) or 'none'})"
                    )
        return self

    def site(self, name: str) -> SiteConfig:
        """The site called `name`; `ConfigError` listing the known names otherwise."""
        for site in self.sites:
            if site.name == name:
                return site
        known = ", ".join(s.name for s in self.sites) or "none configured"
        raise ConfigError(f"{self.path or 'config'}: no site named {name!r} (sites: {known})")


def default_config_path() -> Path:
    """`$CLINICWATCH_CONFIG`, else ``./clinicwatch.yaml``."""
    return Path(os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG_NAME)


def _location(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def describe_error(error: dict[str, Any], known_keys: Iterable[str] | None = None) -> str:
    """One pydantic error as a reader-friendly phrase; an unknown key gets the closest of
    `known_keys` (default: every key of the config file) as a suggestion."""
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        known = list(known_keys) if known_keys is not None else _known_keys()
        guess = difflib.get_close_matches(str(error["loc"][-1]), known, n=1, cutoff=0.5)
        return f"unknown key (did you mean {guess[0]!r}?)" if guess else "unknown key"
    if error["type"] == "missing":
        return "required key is missing"
    if "input" in error and error["type"] not in ("value_error", "assertion_error"):
        value = error["input"]
        if isinstance(value, str | int | float | bool) or value is None:
            message += f": {value!r}"
    return message


def _known_keys() -> list[str]:
    models = (Config, SiteConfig, CrawlConfig, SmtpConfig, SubscriberConfig, AlertsConfig)
    return sorted({f.alias or name for m in models for name, f in m.model_fields.items()})


def config_from_dict(data: Any, path: Path | str = "<config>") -> Config:
    """Validate an already-parsed mapping; errors become one `ConfigError`."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: the file must be a YAML mapping (key: value), not {type(data).__name__}"
        )
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        lines = [f"{path}: {_location(e['loc'])}: {describe_error(e)}" for e in exc.errors()]
        raise ConfigError("\n".join(lines)) from None
    config.path = Path(path)
    return _resolve_paths(config)


def _resolve_paths(config: Config) -> Config:
    """Relative SQLite files and folders are relative to the config file, not the CWD."""
    base = config.path.parent if config.path and config.path.name else Path(".")
    prefix = "sqlite:///"
    if config.database.startswith(prefix):
        rest = config.database[len(prefix) :]
        if rest and rest != ":memory:" and not rest.startswith("/"):
            config.database = prefix + str((base / rest).resolve())
    if config.alerts.file_dir is not None and not config.alerts.file_dir.is_absolute():
        config.alerts.file_dir = (base / config.alerts.file_dir).resolve()
    if config.rules_dir is not None and not config.rules_dir.is_absolute():
        config.rules_dir = (base / config.rules_dir).resolve()
    return config


def load_config(path: str | Path | None = None) -> Config:
    """Read and validate the config file (default: `default_config_path()`)."""
    path = Path(path) if path else default_config_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: config file not found (pass --config FILE or set ${CONFIG_ENV})"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}: {where}invalid YAML: {problem}") from None
    return config_from_dict(data, path)
