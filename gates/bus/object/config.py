"""Where an object bus lives and how to reach it: `s3://bucket/prefix` plus the standard AWS
settings, and the obstore client made from them.

Credentials and the endpoint come from where every AWS tool looks, so a worker needs no
setting of ours: the environment (`AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`,
`AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`, `AWS_ALLOW_HTTP=true` for a
plain-http endpoint such as a MinIO on the LAN), then the shared files (`~/.aws/credentials`,
`~/.aws/config`, profile `AWS_PROFILE`). A location never carries a credential: one typed as
`s3://key:secret@bucket` is refused, since a location is echoed in messages and pages.

`Settings` holds the secret but never shows it: its repr masks it, and `scrub` removes it
from any text an error is built from.
"""

from __future__ import annotations

import configparser
import os
import re
import threading
import urllib.parse
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from obstore.store import S3Store

SCHEME = "s3://"
INSTALL_HINT = 'pip install "dataset-gates[s3]"'
RETRIES_ENV = "DATASET_GATES_S3_RETRIES"  # how many times a failed request is retried
TIMEOUT_ENV = "DATASET_GATES_S3_TIMEOUT"  # seconds one request may take
DEFAULT_RETRIES = 5
DEFAULT_TIMEOUT = 120.0
_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_PREFIX_PART_RE = re.compile(r"[A-Za-z0-9!_.*'()-]+")  # S3's safe characters for key names
_TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Settings:
    """Everything needed to reach one bus. The secret is never part of the repr."""

    bucket: str
    prefix: str  # "" or "a/b", no leading or trailing '/'
    endpoint: str | None = None
    region: str | None = None
    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    allow_http: bool = False
    retries: int = DEFAULT_RETRIES
    timeout: float = DEFAULT_TIMEOUT

    @property
    def location(self) -> str:
        return f"{SCHEME}{self.bucket}/{self.prefix}" if self.prefix else f"{SCHEME}{self.bucket}"

    @property
    def label(self) -> str:
        """The bus's short name: the prefix's last part, else the bucket."""
        return self.prefix.rsplit("/", 1)[-1] if self.prefix else self.bucket

    @property
    def secrets(self) -> list[str]:
        """What must never reach a message (the key id too: it names the account)."""
        return [s for s in (self.secret_access_key, self.session_token, self.access_key_id) if s]

    def scrub(self, text: str) -> str:
        """`text` with every secret masked: the last guard before a message leaves the bus."""
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text


def parse_location(location: str) -> tuple[str, str]:
    """(bucket, prefix) of `s3://bucket/prefix`; ValueError naming what is wrong."""
    parts = urlsplit(location)
    if parts.scheme.lower() != "s3":
        raise ValueError(f"an object bus location starts with {SCHEME}, got {location!r}")
    if "@" in parts.netloc or parts.password or parts.username:
        raise ValueError(
            "credentials never go in a bus location (it is shown in messages and pages): "
            "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or use ~/.aws/credentials"
        )
    if parts.query or parts.fragment:
        raise ValueError(f"a bus location is {SCHEME}bucket/prefix, with no '?' or '#'")
    bucket = parts.netloc
    if not _BUCKET_RE.fullmatch(bucket):
        raise ValueError(
            f"{bucket!r} is not a bucket name: 3-63 lowercase letters, digits, '-' and '.' ({SCHEME}bucket/prefix)"
        )
    pieces = [p for p in parts.path.split("/") if p]
    for piece in pieces:
        if not _PREFIX_PART_RE.fullmatch(piece) or piece in (".", ".."):
            raise ValueError(f"{piece!r} is not a safe prefix part: use letters, digits and -_.!*'()")
    return bucket, "/".join(pieces)


def _aws_files(env: dict[str, str]) -> dict[str, str]:
    """Region, endpoint and keys of the profile in ~/.aws/config and ~/.aws/credentials."""
    home = Path(env.get("HOME") or Path.home())
    profile = env.get("AWS_PROFILE") or env.get("AWS_DEFAULT_PROFILE") or "default"
    found: dict[str, str] = {}
    for path, section in (
        (
            env.get("AWS_CONFIG_FILE") or home / ".aws" / "config",
            profile if profile == "default" else f"profile {profile}",
        ),
        (env.get("AWS_SHARED_CREDENTIALS_FILE") or home / ".aws" / "credentials", profile),
    ):
        parser = configparser.ConfigParser(interpolation=None)
        try:
            parser.read(path, encoding="utf-8")
        except (OSError, configparser.Error, UnicodeDecodeError):
            continue  # an unreadable file is no settings: the request then says what is missing
        if parser.has_section(section):
            found.update({k: v.strip() for k, v in parser.items(section) if v.strip()})
    return found


def _number(env: dict[str, str], name: str, default: float, low: float, high: float) -> float:
    text = env.get(name)
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = -1
    if not low <= value <= high:
        raise ValueError(f"{name} must be a number from {low:g} to {high:g}, got {text!r}")
    return value


def settings_for(location: str, env: dict[str, str] | None = None) -> Settings:
    """The settings of `location` from the environment, then the AWS files."""
    env = dict(os.environ if env is None else env)
    bucket, prefix = parse_location(location)
    files = _aws_files(env)

    def pick(*names: str) -> str | None:
        for name in names:
            if env.get(name):
                return env[name]
        return files.get(names[0].lower().removeprefix("aws_")) or files.get(names[0].lower())

    return Settings(
        bucket=bucket,
        prefix=prefix,
        endpoint=_endpoint(pick("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL") or files.get("endpoint_url")),
        region=pick("AWS_REGION", "AWS_DEFAULT_REGION") or files.get("region"),
        access_key_id=pick("AWS_ACCESS_KEY_ID"),
        secret_access_key=pick("AWS_SECRET_ACCESS_KEY"),
        session_token=pick("AWS_SESSION_TOKEN"),
        allow_http=(env.get("AWS_ALLOW_HTTP") or "").strip().lower() in _TRUE,
        retries=int(_number(env, RETRIES_ENV, DEFAULT_RETRIES, 0, 20)),
        timeout=_number(env, TIMEOUT_ENV, DEFAULT_TIMEOUT, 1, 3600),
    )


def _endpoint(url: str | None) -> str | None:
    """The endpoint URL when it is one (http(s)://host[:port][/path]); ValueError naming the
    setting otherwise: obstore's own URL parser panics on some malformed ones (a Rust panic,
    which no `except Exception` catches). The URL is not echoed: it may carry a token."""
    if url is None:
        return None
    try:
        parts = urllib.parse.urlsplit(url.strip())
        parts.port  # noqa: B018 (raises ValueError for a port that is not a number)
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or " " in url.strip():
        raise ValueError("AWS_ENDPOINT_URL is not an http(s)://host[:port] URL: check the setting")
    return url.strip()


_stores: dict[Settings, S3Store] = {}
_stores_lock = threading.Lock()


def s3_store(settings: Settings) -> S3Store:
    """The obstore client of `settings`, one per settings in a process (its connection pool
    is reused by every bus opened on the same location). ImportError names the extra."""
    try:
        from obstore.store import S3Store
    except ImportError:
        raise ImportError(f"an s3:// bus needs obstore: {INSTALL_HINT}") from None
    with _stores_lock:
        store = _stores.get(settings)
        if store is None:
            config: dict[str, Any] = {"conditional_put": "etag"}
            for key in ("endpoint", "region", "access_key_id", "secret_access_key", "session_token"):
                value = getattr(settings, key)
                if value:
                    config[key] = value
            if settings.endpoint:
                config.setdefault("region", "us-east-1")  # MinIO and moto accept any; signing needs one
            store = S3Store(
                settings.bucket,
                prefix=settings.prefix or None,
                config=config,  # type: ignore[arg-type]
                client_options={
                    "allow_http": settings.allow_http,
                    "timeout": timedelta(seconds=settings.timeout),
                    "connect_timeout": timedelta(seconds=min(10.0, settings.timeout)),
                },
                retry_config={
                    "max_retries": settings.retries,
                    "backoff": {
                        "init_backoff": timedelta(milliseconds=100),
                        "max_backoff": timedelta(seconds=5),
                        "base": 2,
                    },
                    "retry_timeout": timedelta(seconds=max(30.0, settings.timeout)),
                },
            )
            _stores[settings] = store
        return store
