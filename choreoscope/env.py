"""Typed readers for settings that come from the environment.

Each reader fails loudly with ``ImproperlyConfigured`` on a value it cannot
understand, instead of guessing. Secrets can be given as ``NAME_FILE`` (a path
whose contents are the value), the convention of Docker and Kubernetes secrets.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str | None = None, environ: Mapping[str, str] = os.environ) -> str | None:
    """The value of ``name``, or the contents of the file named by ``name_FILE``."""
    file_name = environ.get(f"{name}_FILE")
    if file_name:
        if name in environ:
            raise ImproperlyConfigured(f"Set {name} or {name}_FILE, not both.")
        try:
            return Path(file_name).read_text().strip()
        except OSError as error:
            raise ImproperlyConfigured(f"{name}_FILE={file_name!r} cannot be read: {error}") from error
    return environ.get(name, default)


def env_required(name: str, environ: Mapping[str, str] = os.environ, why: str = "") -> str:
    value = env_str(name, environ=environ)
    if not value:
        raise ImproperlyConfigured(f"{name} must be set{': ' + why if why else '.'}")
    return value


def env_bool(name: str, default: bool, environ: Mapping[str, str] = os.environ) -> bool:
    raw = environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean; use one of 1/0, true/false, yes/no, on/off.")


def env_int(name: str, default: int, environ: Mapping[str, str] = os.environ, minimum: int | None = None) -> int:
    raw = environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer.") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}={value} is below its minimum of {minimum}.")
    return value


def env_float(name: str, default: float, environ: Mapping[str, str] = os.environ, minimum: float | None = None) -> float:
    raw = environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a number.") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}={value} is below its minimum of {minimum}.")
    return value


def env_list(name: str, default: list[str], environ: Mapping[str, str] = os.environ) -> list[str]:
    raw = environ.get(name)
    if raw is None:
        return list(default)
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_networks(name: str, environ: Mapping[str, str] = os.environ) -> list[str]:
    """A comma-separated list of IP addresses or networks (``10.0.0.5``, ``10.0.0.0/8``), or ``*``."""
    values = env_list(name, [], environ)
    for value in values:
        if value == "*":
            continue
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise ImproperlyConfigured(
                f"{name}: {value!r} is not an IP address or network; use e.g. 10.0.0.5, 10.0.0.0/8 or *."
            ) from None
    return values


def env_choice(name: str, default: str, choices: tuple[str, ...], environ: Mapping[str, str] = os.environ) -> str:
    value = environ.get(name, default).strip().lower()
    if value not in choices:
        raise ImproperlyConfigured(f"{name}={value!r} must be one of: {', '.join(choices)}.")
    return value


def database_from_url(url: str) -> dict[str, object]:
    """Django DATABASES entry for a ``postgres://user:pass@host:port/name?opt=v`` URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql", "pgsql"):
        raise ImproperlyConfigured(
            f"DATABASE_URL scheme {parts.scheme!r} is not supported; use postgres://user:password@host:5432/name."
        )
    name = unquote(parts.path.lstrip("/"))
    if not name:
        raise ImproperlyConfigured("DATABASE_URL has no database name (postgres://host:5432/NAME).")
    options = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    try:
        port = parts.port
    except ValueError:
        raise ImproperlyConfigured(f"DATABASE_URL has an invalid port: {url!r}") from None
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": name,
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "",
        "PORT": str(port or ""),
        "OPTIONS": options,
        "CONN_MAX_AGE": 60,
        "CONN_HEALTH_CHECKS": True,
    }


def env_url(name: str, default: str, schemes: tuple[str, ...], environ: Mapping[str, str] = os.environ) -> str:
    """A URL whose scheme is one of ``schemes`` (e.g. a broker's ``amqp://`` or ``nats://``)."""
    url = env_str(name, environ=environ) or default
    parts = urlsplit(url)
    if parts.scheme not in schemes or not parts.hostname:
        raise ImproperlyConfigured(
            f"{name} {url!r} must be a URL starting with {' or '.join(f'{s}://' for s in schemes)} and naming a host."
        )
    return url


def check_redis_url(url: str) -> str:
    if urlsplit(url).scheme not in ("redis", "rediss", "unix"):
        raise ImproperlyConfigured(f"REDIS_URL {url!r} must start with redis://, rediss:// or unix://.")
    return url
