"""``tidings keys`` and ``tidings tenants``: API keys and tenants, through the server's API."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.table import Table

from tidings.cli.http import KeyOption, UrlOption, api, err

out = Console(highlight=False, soft_wrap=True)
keys = typer.Typer(help="API keys: create (shown once), list, revoke.", no_args_is_help=True)
tenants = typer.Typer(help="Tenants (root keys only): create, list.", no_args_is_help=True)
JsonOption = Annotated[bool, typer.Option("--json", help="Print the server's JSON answer.")]


def _print_json(body: Any) -> None:
    typer.echo(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode())


@keys.command("create")
def create_key(
    name: Annotated[str, typer.Option("--name", help="What the key is for.")],
    scopes: Annotated[
        list[str],
        typer.Option("--scope", "-s", help="publish, subscribe, admin or root (repeatable)."),
    ],
    tenant: Annotated[
        str | None, typer.Option("--tenant", help="Another tenant's key (needs root).")
    ] = None,
    rate_limit: Annotated[
        float | None, typer.Option("--rate-limit", help="Events per second (default: none).")
    ] = None,
    max_streams: Annotated[
        int | None, typer.Option("--max-streams", help="Open streams at once (default 5).")
    ] = None,
    as_json: JsonOption = False,
    url: UrlOption = None,
    key: KeyOption = None,
) -> None:
    """Create a key. It is printed once, alone on stdout; only its hash is kept.

    Examples:

      tidings keys create --name ci --scope publish

      export TIDINGS_KEY=$(tidings keys create --name reader --scope subscribe)
    """
    with api(url) as client:
        made = client.create_key(
            name, scopes, tenant=tenant, rate_limit=rate_limit, max_streams=max_streams
        )
    created = made.raw
    if as_json:
        _print_json(created)
        return
    typer.echo(created["key"])
    err.print(
        f"created {created['id']} ({created['prefix']}...) in tenant {created['tenant']} "
        f"with scopes {', '.join(created['scopes'])}; the key is shown this once",
        markup=False,
    )


@keys.command("list")
def list_keys(
    tenant: Annotated[
        str | None, typer.Option("--tenant", help="Another tenant's keys (needs root).")
    ] = None,
    as_json: JsonOption = False,
    url: UrlOption = None,
    key: KeyOption = None,
) -> None:
    """List keys by prefix (never the keys themselves), revoked ones too."""
    with api(url) as client:
        found = [found_key.raw for found_key in client.list_keys(tenant)]
    if as_json:
        _print_json(found)
        return
    if not found:
        err.print("no keys", markup=False)
        return
    table = Table(box=None, pad_edge=False)
    for column in ("id", "prefix", "name", "tenant", "scopes", "created", "revoked"):
        table.add_column(column, no_wrap=column in ("id", "prefix"))
    for item in found:
        table.add_row(
            item["id"],
            item["prefix"] + "...",
            item["name"],
            item["tenant"],
            ",".join(item["scopes"]),
            item["created_at"],
            item["revoked_at"] or "",
        )
    out.print(table)


@keys.command("revoke")
def revoke_key(
    key_id: Annotated[str, typer.Argument(metavar="ID", help="The key's id (key_...).")],
    url: UrlOption = None,
    key: KeyOption = None,
) -> None:
    """Revoke a key at once; its open streams are closed."""
    with api(url) as client:
        client.revoke_key(key_id)
    err.print(f"revoked {key_id}", markup=False)


@tenants.command("create")
def create_tenant(
    tenant_id: Annotated[
        str, typer.Argument(metavar="ID", help="1-63 of a-z, 0-9 and '-', e.g. acme.")
    ],
    name: Annotated[str | None, typer.Option("--name", help="A display name.")] = None,
    as_json: JsonOption = False,
    url: UrlOption = None,
    key: KeyOption = None,
) -> None:
    """Create a tenant (needs a root key), then give it keys with `keys create --tenant`."""
    with api(url) as client:
        created = client.create_tenant(tenant_id, name).raw
    if as_json:
        _print_json(created)
    else:
        err.print(f"created tenant {created['id']}", markup=False)


@tenants.command("list")
def list_tenants(as_json: JsonOption = False, url: UrlOption = None, key: KeyOption = None) -> None:
    """List tenants (needs a root key)."""
    with api(url) as client:
        found = [tenant.raw for tenant in client.list_tenants()]
    if as_json:
        _print_json(found)
        return
    table = Table(box=None, pad_edge=False)
    for column in ("id", "name", "created"):
        table.add_column(column)
    for item in found:
        table.add_row(item["id"], item["name"], item["created_at"])
    out.print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(keys, name="keys")
    app.add_typer(tenants, name="tenants")
