"""Optional features and the extra that installs each (``pip install 'tidings[mqtt]'``).

The core install runs the embedded default (SQLite, in-process fan-out, HTTP ingest). A
feature that needs more is refused at start, in one line that names the command to run,
rather than failing later on an import deep inside a task.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from tidings.settings import ConfigError


@dataclass(frozen=True, slots=True)
class Extra:
    name: str  # as in pyproject.toml's optional-dependencies
    module: str  # the import that tells whether it is installed


EXTRAS = {
    extra.name: extra
    for extra in (
        Extra("postgres", "asyncpg"),
        Extra("redis", "redis"),
        Extra("nats", "nats"),
        Extra("mqtt", "paho.mqtt"),
        Extra("smartthings", "cryptography"),
    )
}

# URL schemes of TIDINGS_STORE and TIDINGS_BACKPLANE, and the extra each needs.
SCHEME_EXTRAS = {
    "postgresql": "postgres",
    "postgres": "postgres",
    "redis": "redis",
    "rediss": "redis",
    "nats": "nats",
}


def installed(name: str) -> bool:
    module = EXTRAS[name].module
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # the parent package of a dotted name is missing
        return False


def require(name: str, feature: str) -> None:
    """Raise ConfigError, naming the install command, unless extra ``name`` is installed."""
    if not installed(name):
        raise ConfigError(f"{feature} needs the {name} extra: pip install 'tidings[{name}]'")


def require_for_url(url: str | None, setting: str) -> None:
    """The extra a store or backplane URL needs (``postgresql://...`` needs ``postgres``)."""
    if not url or "://" not in url:
        return
    scheme = url.split("://", 1)[0].lower()
    if scheme in SCHEME_EXTRAS:
        require(SCHEME_EXTRAS[scheme], f"{setting}={scheme}://...")
