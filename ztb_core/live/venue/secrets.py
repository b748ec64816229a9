"""API credentials: loaded from environment variables or a mode-0600 key file, never shown.

`Credentials` redacts itself in repr/str, `redact` scrubs a text, and `SecretsFilter` scrubs every
log record (ccxt's own debug logging prints request headers, ACCESS-KEY included).
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, overload

import yaml

from ...errors import ZtbError
from ...redaction import REDACTED, redact_secrets
from .exchange_config import ExchangeConfig


class CredentialsError(ZtbError):
    """Keys are missing, unreadable, or stored unsafely."""


@dataclass(frozen=True)
class Credentials:
    api_key: str = field(repr=False)
    secret: str = field(repr=False)
    source: str = "env"

    def __repr__(self) -> str:
        return f"Credentials(api_key={REDACTED}, secret={REDACTED}, source={self.source!r})"

    __str__ = __repr__

    def values(self) -> list[str]:
        return [v for v in (self.api_key, self.secret) if v]


def _read_key_file(path: Path) -> Credentials:
    try:
        info = path.stat()
    except FileNotFoundError:
        raise CredentialsError(f"{path}: key file not found") from None
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        raise CredentialsError(
            f"{path}: key file has mode {mode:04o}; it must be 0600 "
            f"(readable by its owner only): run `chmod 600 {path}`"
        )
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        # the parser's message can quote file content, i.e. the secret: name the file only
        raise CredentialsError(f"{path}: key file is not readable YAML ({exc.__class__.__name__})") from None
    if not isinstance(data, dict):
        raise CredentialsError(f"{path}: key file must be a mapping with keys api_key and secret")
    missing = [k for k in ("api_key", "secret") if not str(data.get(k) or "").strip()]
    if missing:
        raise CredentialsError(f"{path}: key file lacks {', '.join(missing)} (expected keys: api_key, secret)")
    return Credentials(str(data["api_key"]).strip(), str(data["secret"]).strip(), source=str(path))


@overload
def load_credentials(
    cfg: ExchangeConfig, env: Mapping[str, str] | None = None, required: Literal[True] = True
) -> Credentials: ...


@overload
def load_credentials(
    cfg: ExchangeConfig, env: Mapping[str, str] | None = None, *, required: bool
) -> Credentials | None: ...


def load_credentials(
    cfg: ExchangeConfig, env: Mapping[str, str] | None = None, required: bool = True
) -> Credentials | None:
    """Keys from `<EXCHANGE>_API_KEY`/`<EXCHANGE>_API_SECRET` (or the configured names), else the key
    file. Without keys: `CredentialsError` saying where they were looked for, or None if not required."""
    env = os.environ if env is None else env
    key_var, secret_var = cfg.key_env_names()
    key, secret = env.get(key_var, "").strip(), env.get(secret_var, "").strip()
    if key and secret:
        return Credentials(key, secret, source=f"env:{key_var}")
    if key or secret:
        present, absent = (key_var, secret_var) if key else (secret_var, key_var)
        raise CredentialsError(f"{present} is set but {absent} is not: set both or neither")
    if cfg.credentials.key_file is not None:
        return _read_key_file(Path(cfg.credentials.key_file).expanduser())
    if not required:
        return None
    raise CredentialsError(
        f"no API keys for {cfg.exchange}: set {key_var} and {secret_var}, "
        f"or credentials.key_file (a mode-0600 YAML file with api_key and secret)"
    )


def redact(text: str, credentials: Credentials | None) -> str:
    """`text` with every occurrence of the key or secret replaced by ***."""
    return text if credentials is None else redact_secrets(text, credentials.values())


class SecretsFilter(logging.Filter):
    """Scrubs the key and secret from a record's message and arguments (attach to handlers or loggers)."""

    def __init__(self, credentials: Credentials) -> None:
        super().__init__()
        self.credentials = credentials

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: still scrub what we can
            message = str(record.msg)
        clean = redact(message, self.credentials)
        if clean != message or record.args:
            record.msg, record.args = clean, None
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self.credentials)
        return True


DEFAULT_LOGGERS = ("", "ccxt", "ccxt.base.exchange", "ztb_core")


def install_log_filter(credentials: Credentials, loggers: tuple[str, ...] = DEFAULT_LOGGERS) -> SecretsFilter:
    """Attach one `SecretsFilter` to the named loggers and to every handler of the root logger.
    Returns it so a caller can remove it again (`remove_log_filter`)."""
    filt = SecretsFilter(credentials)
    for name in loggers:
        logging.getLogger(name).addFilter(filt)
    for handler in logging.getLogger().handlers:
        handler.addFilter(filt)
    return filt


def remove_log_filter(filt: SecretsFilter, loggers: tuple[str, ...] = DEFAULT_LOGGERS) -> None:
    for name in loggers:
        logging.getLogger(name).removeFilter(filt)
    for handler in logging.getLogger().handlers:
        handler.removeFilter(filt)
