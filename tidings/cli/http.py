"""The client commands' side of the server: one Python client per command, and every failure
made readable.

A client command talks to a running server. Whatever goes wrong there (the server refuses, is
not running, does not answer) ends as one ``error: ...`` line on stderr and a non-zero exit,
never a traceback.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from tidings import __version__
from tidings.client import Client, TidingsError
from tidings.settings import ConfigError, load_settings

err = Console(stderr=True, highlight=False, soft_wrap=True)

UrlOption = Annotated[
    str | None,
    typer.Option(
        "--url",
        help="The Tidings server (env TIDINGS_URL, default http://127.0.0.1:8000).",
        show_default=False,
    ),
]

_given_key: ContextVar[str | None] = ContextVar("tidings_cli_key", default=None)


def _remember_key(value: str | None) -> str | None:
    """Keep ``--key`` for ``api`` (helpers between a command and its requests need not
    pass it along)."""
    _given_key.set(value)
    return value


KeyOption = Annotated[
    str | None,
    typer.Option(
        "--key",
        help="API key for a server that requires keys (env TIDINGS_KEY).",
        callback=_remember_key,
        show_default=False,
    ),
]

TenantOption = Annotated[
    str | None,
    typer.Option(
        "--tenant",
        help="Act in this tenant (needs a root key; default: the key's own).",
        show_default=False,
    ),
]


def api_key() -> str | None:
    """``--key``, else ``TIDINGS_KEY``, else none."""
    return _given_key.get() or os.environ.get("TIDINGS_KEY") or None


# Exit codes: 1 when the server refused or could not be reached, 2 for a wrong command line.
FAILED = 1
USAGE = 2


def describe_loc(loc: Any) -> str:
    """``["body", 3, "time"]`` as ``body.3.time``."""
    return ".".join(str(part) for part in loc) if isinstance(loc, list) else str(loc)


def print_error(message: str) -> None:
    err.print(f"[red]error:[/red] {message}", markup=True, highlight=False)


def print_server_error(error: TidingsError, prefix: str = "") -> None:
    """``error: <code>: <message>`` then one indented line per detail."""
    print_error(escape(f"{prefix}{error.code}: {error.message}"))
    if error.status == 401:
        err.print("  this server requires an API key: pass --key or set TIDINGS_KEY", markup=False)
    if error.code == "not_tidings":
        err.print("  check --url or TIDINGS_URL", markup=False)
    for detail in error.details:
        if isinstance(detail, dict):
            err.print(
                f"  {describe_loc(detail.get('loc', ''))}: {detail.get('msg', '')}", markup=False
            )
        else:
            err.print(f"  {detail}", markup=False)


def fail(message: str, code: int = FAILED) -> typer.Exit:
    """Print ``error: message`` and return the exit to raise."""
    print_error(escape(message))
    return typer.Exit(code)


def server_url(url: str | None) -> str:
    """``--url``, else ``TIDINGS_URL``, else the config file, else the default."""
    try:
        return load_settings({"url": url}).url.rstrip("/")
    except ConfigError as error:
        raise fail(str(error), USAGE) from None


def no_answer(error: TidingsError) -> tuple[str, int]:
    """The error line and exit code for a request that got no answer from the server."""
    if error.code == "unreachable":
        return (
            f"{error.message}. Start one with `tidings serve`, or point --url or TIDINGS_URL "
            "at a running server.",
            FAILED,
        )
    if error.code == "invalid_url":
        return f"{error.message.rstrip('.')} (--url or TIDINGS_URL)", USAGE
    if error.code == "invalid_parameter":  # refused by the client before anything was sent
        return error.message, USAGE
    return error.message, FAILED


@contextmanager
def api(url: str | None) -> Iterator[Client]:
    """The Python client for the whole command; a failure becomes an error line and an exit."""
    base = server_url(url)
    headers = {"User-Agent": f"tidings-cli/{__version__}"}
    try:
        with Client(base, key=api_key(), headers=headers) as client:
            yield client
    except TidingsError as error:
        if error.status is not None:
            print_server_error(error)
            raise typer.Exit(FAILED) from None
        message, code = no_answer(error)
        raise fail(message, code) from None
    except BrokenPipeError:
        # The reader of stdout went away (`tidings query --json | head`): stop quietly, and
        # point stdout at /dev/null so the interpreter's last flush does not complain.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise typer.Exit(0) from None
