"""``tidings webhooks``: register endpoints, look at their deliveries, retry and replay."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from tidings.cli.choices import DeliveryStatus
from tidings.cli.filters import resolve_time
from tidings.cli.http import KeyOption, TenantOption, UrlOption, api, err

out = Console(highlight=False, soft_wrap=True)
webhooks = typer.Typer(
    name="webhooks",
    help=(
        "Outbound webhook endpoints: add, list, show, enable, disable, delete, deliveries, "
        "retry, replay."
    ),
    no_args_is_help=True,
)
JsonOption = Annotated[bool, typer.Option("--json", help="Print the server's JSON answer.")]


def _print_json(body: Any) -> None:
    typer.echo(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode())


def _id_column(table: Table, ids: list[str]) -> None:
    """An id column that is never folded or cut, however narrow the terminal: an id is
    copied into the next command, so the other columns fold instead."""
    table.add_column("id", no_wrap=True, min_width=max((len(i) for i in ids), default=2))


def _endpoint_table(endpoints: list[dict[str, Any]]) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False)
    _id_column(table, [e["id"] for e in endpoints])
    for name in ("url", "events", "active", "disabled_reason", "description"):
        table.add_column(name, overflow="fold")
    for e in endpoints:
        table.add_row(
            Text(e["id"]),
            Text(e["url"]),
            Text(",".join(e["events"])),
            Text("yes" if e["active"] else "no"),
            Text(e.get("disabled_reason") or ""),
            Text(e.get("description") or ""),
        )
    return table


def _show_endpoint(body: dict[str, Any], as_json: bool) -> None:
    if as_json:
        _print_json(body)
        return
    for key, value in body.items():
        shown = orjson.dumps(value).decode() if isinstance(value, dict | list) else str(value)
        out.print(Text(f"{key:16} {shown}"))
    if "secret" in body:
        err.print("keep the secret: it is shown only now (and after rotate-secret)", markup=False)


@webhooks.command("add")
def add(
    url_: Annotated[str, typer.Argument(metavar="URL", help="Where to POST the events.")],
    events: Annotated[
        list[str] | None,
        typer.Option(
            "--events",
            "-e",
            help="Type patterns (repeatable); default # (all).",
            show_default=False,
        ),
    ] = None,
    source: Annotated[
        list[str] | None, typer.Option("--source", help="Only these sources.", show_default=False)
    ] = None,
    exclude_source: Annotated[
        list[str] | None,
        typer.Option(
            "--exclude-source", help="Never these sources (echo suppression).", show_default=False
        ),
    ] = None,
    secret: Annotated[
        str | None,
        typer.Option(
            "--secret",
            help="Signing secret, 16+ characters (default: generated whsec_...).",
            show_default=False,
        ),
    ] = None,
    description: Annotated[str | None, typer.Option("--description", show_default=False)] = None,
    rate_limit: Annotated[
        float | None,
        typer.Option("--rate-limit", help="Requests per second at most.", show_default=False),
    ] = None,
    header: Annotated[
        list[str] | None,
        typer.Option(
            "--header", "-H", help="Extra header 'Name: value' (repeatable).", show_default=False
        ),
    ] = None,
    inactive: Annotated[bool, typer.Option("--inactive", help="Register it disabled.")] = False,
    tenant: TenantOption = None,
    as_json: JsonOption = False,
    url: UrlOption = None,
    key: KeyOption = None,
) -> None:
    """Register an endpoint. Prints its id and signing secret.

    Examples:

      tidings webhooks add https://example.com/hooks --events 'order.*'

      tidings webhooks add https://ci.example/in -e 'build.#' --exclude-source ci -H 'X-Token: t'

      tidings webhooks add https://acme.example/in --tenant acme   # a root key, for acme
    """
    headers: dict[str, str] = {}
    for item in header or []:
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            raise typer.BadParameter(f"{item!r} is not 'Name: value'", param_hint="--header")
        headers[name.strip()] = value.strip()
    with api(url) as client:
        created = client.create_webhook(
            url_,
            events or ["#"],
            source=source or None,
            exclude_source=exclude_source or None,
            secret=secret,
            active=not inactive,
            description=description,
            rate_limit=rate_limit,
            headers=headers or None,
            tenant=tenant,
        )
    _show_endpoint(created.raw, as_json)


@webhooks.command("list")
def list_(
    tenant: TenantOption = None,
    as_json: JsonOption = False,
    url: UrlOption = None,
    key: KeyOption = None,
) -> None:
    """List the endpoints (of the key's tenant, or of --tenant with a root key; the other
    commands find an endpoint by its id in any tenant with a root key).

    Examples:

      tidings webhooks list

      tidings webhooks list --tenant acme
    """
    with api(url) as client:
        found = [endpoint.raw for endpoint in client.list_webhooks(tenant)]
    if as_json:
        _print_json(found)
    elif found:
        out.print(_endpoint_table(found))
    else:
        err.print("no webhook endpoints", markup=False)


@webhooks.command("show")
def show(
    webhook_id: str, as_json: JsonOption = False, url: UrlOption = None, key: KeyOption = None
) -> None:
    """Show one endpoint.

    Examples:

      tidings webhooks show wh_01a2...
    """
    with api(url) as client:
        _show_endpoint(client.get_webhook(webhook_id).raw, as_json)


def _set_active(webhook_id: str, active: bool, url: str | None) -> None:
    with api(url) as client:
        endpoint = client.update_webhook(webhook_id, active=active)
    err.print(f"{endpoint.id} is now {'enabled' if endpoint.active else 'disabled'}", markup=False)


@webhooks.command("enable")
def enable(webhook_id: str, url: UrlOption = None, key: KeyOption = None) -> None:
    """Enable an endpoint: it receives events from now on (replay sends what it missed).

    Examples:

      tidings webhooks enable wh_01a2...
    """
    _set_active(webhook_id, True, url)


@webhooks.command("disable")
def disable(webhook_id: str, url: UrlOption = None, key: KeyOption = None) -> None:
    """Disable an endpoint: it receives nothing and its pending deliveries are cancelled.

    Examples:

      tidings webhooks disable wh_01a2...
    """
    _set_active(webhook_id, False, url)


@webhooks.command("delete")
def delete(webhook_id: str, url: UrlOption = None, key: KeyOption = None) -> None:
    """Delete an endpoint (its pending deliveries are cancelled).

    Examples:

      tidings webhooks delete wh_01a2...
    """
    with api(url) as client:
        client.delete_webhook(webhook_id)
    err.print(f"deleted {webhook_id}", markup=False)


def _delivery_table(deliveries: list[dict[str, Any]]) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False)
    _id_column(table, [d["id"] for d in deliveries])
    for name in ("event seq", "status", "attempts", "last", "next attempt"):
        table.add_column(name, overflow="fold")
    for d in deliveries:
        last = d["attempts"][-1] if d["attempts"] else None
        last_text = ""
        if last:
            last_text = (
                str(last["status_code"])
                if last["status_code"] is not None
                else (last["error"] or "")
            )
        table.add_row(
            Text(d["id"]),
            Text(str(d["event_seq"])),
            Text(d["status"]),
            Text(str(len(d["attempts"]))),
            Text(last_text),
            Text(d.get("next_attempt_at") or ""),
        )
    return table


@webhooks.command("deliveries")
def deliveries(
    webhook_id: str,
    status: Annotated[
        DeliveryStatus | None,
        typer.Option("--status", help="Only deliveries in this state.", show_default=False),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=1000)] = 50,
    as_json: JsonOption = False,
    url: UrlOption = None,
    key: KeyOption = None,
) -> None:
    """An endpoint's deliveries, newest first, with their attempts.

    Examples:

      tidings webhooks deliveries wh_01a2... --status failed
    """
    with api(url) as client:
        page = client.deliveries_page(
            webhook_id, status=status.value if status else None, limit=limit
        )
    found = [delivery.raw for delivery in page.items]
    if as_json:
        _print_json({"deliveries": found, "next": page.next})
    elif found:
        out.print(_delivery_table(found))
    else:
        err.print("no deliveries", markup=False)


@webhooks.command("retry")
def retry(
    delivery_id: str, as_json: JsonOption = False, url: UrlOption = None, key: KeyOption = None
) -> None:
    """Send one delivery again now.

    Examples:

      tidings webhooks retry 01a2131a-219b-70fc-b480-55256c1e2b53
    """
    with api(url) as client:
        delivery = client.retry_delivery(delivery_id)
    if as_json:
        _print_json(delivery.raw)
    else:
        err.print(f"{delivery.id} is {delivery.status}", markup=False)


@webhooks.command("replay")
def replay(
    webhook_id: str,
    since: Annotated[
        str | None,
        typer.Option("--since", help="ISO 8601 or a duration ago (2h).", show_default=False),
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="ISO 8601 or a duration ago.", show_default=False)
    ] = None,
    only_failed: Annotated[
        bool, typer.Option("--only-failed", help="Only events whose delivery failed.")
    ] = False,
    url: UrlOption = None,
    key: KeyOption = None,
) -> None:
    """Send a window of events again under the endpoint's current filter (same webhook-id).

    Examples:

      tidings webhooks replay wh_01a2... --since 6h

      tidings webhooks replay wh_01a2... --since 2026-11-24T00:00:00Z --only-failed
    """
    with api(url) as client:
        replayed = client.replay(
            webhook_id,
            since=resolve_time(since) if since else None,
            until=resolve_time(until) if until else None,
            only_failed=only_failed,
        )
    err.print(f"replaying {replayed} events", markup=False)


def register(app: typer.Typer) -> None:
    app.add_typer(webhooks)
