"""Every API call as data: the request to send and how to read its answer (no I/O).

The synchronous and asynchronous clients share these descriptions; they only differ in how
they send a :class:`Call` and wait between attempts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Generic, Literal, TypeVar

import orjson

from tidings.client._errors import TidingsError
from tidings.client._models import (
    DeadLetter,
    Delivery,
    DeliveryStatus,
    Event,
    Key,
    Page,
    Published,
    Redriven,
    Tenant,
    Webhook,
)

T = TypeVar("T")

Values = str | Iterable[str] | None  # one value, a comma list, or several values (any of)
Moment = datetime | str | None  # a datetime (naive means UTC) or ISO 8601 text
Scalar = str | int | float | bool
Where = Mapping[str, Scalar | Sequence[Scalar]] | None
Order = Literal["asc", "desc"]
ExportFormat = Literal["ndjson", "csv"]
Scope = Literal["publish", "subscribe", "admin", "root"]

_JSON = (("Content-Type", "application/json"),)
_NO_VALUE: Any = object()  # marks a keyword left out, so ``None`` can mean "clear it"


@dataclass(frozen=True, slots=True)
class Call:
    """One HTTP request, described."""

    method: str
    path: str
    params: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None
    headers: tuple[tuple[str, str], ...] = ()
    # Sending it twice does no harm (a GET, or a publish whose every event has an
    # idempotency key), so it may be sent again when no answer came or the server said wait.
    safe: bool = False

    def with_param(self, name: str, value: str) -> Call:
        kept = tuple(p for p in self.params if p[0] != name)
        return replace(self, params=(*kept, (name, value)))


@dataclass(frozen=True, slots=True)
class Answer:
    """What came back: enough to judge success and read the body."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    url: str


@dataclass(frozen=True, slots=True)
class Op(Generic[T]):
    """A call and the reader of its answer."""

    call: Call
    read: Callable[[Answer], T]


@dataclass(frozen=True, slots=True)
class Pager(Generic[T]):
    """A list call whose answer has ``{key: [...], "next": cursor}``; pages follow ``next``."""

    call: Call
    key: str
    item: Callable[[dict[str, Any]], T]

    def read(self, answer: Answer) -> Page[T]:
        body = json_object(answer, self.key)
        items = body[self.key]
        if not isinstance(items, list):
            raise not_tidings(answer)
        cursor = body.get("next")
        return Page([self.item(value) for value in items], cursor if cursor else None)

    def after(self, cursor: str) -> Call:
        return self.call.with_param("cursor", cursor)

    def following(self, page: Page[T]) -> Call | None:
        """The call for the page after ``page``; None when it was the last."""
        return self.after(page.next) if page.next else None


# -- reading answers ------------------------------------------------------------------------


def not_tidings(answer: Answer) -> TidingsError:
    return TidingsError(
        "not_tidings",
        f"{answer.url} answered HTTP {answer.status}, not as a Tidings server does",
        status=answer.status,
    )


def check(answer: Answer) -> Answer:
    """``answer`` when it succeeded, else its :class:`TidingsError`."""
    if 200 <= answer.status < 300:
        return answer
    raise TidingsError.from_answer(answer.status, answer.headers, answer.body, answer.url)


def json_object(answer: Answer, *keys: str) -> dict[str, Any]:
    """The JSON object of a successful answer that has ``keys``."""
    check(answer)
    try:
        body = orjson.loads(answer.body)
    except orjson.JSONDecodeError:
        raise not_tidings(answer) from None
    if not isinstance(body, dict) or any(key not in body for key in keys):
        raise not_tidings(answer)
    return body


def _nothing(answer: Answer) -> None:
    check(answer)


def _model(model: Callable[[dict[str, Any]], T], *keys: str) -> Callable[[Answer], T]:
    return lambda answer: model(json_object(answer, *keys))


def _listed(model: Callable[[dict[str, Any]], T], key: str) -> Callable[[Answer], list[T]]:
    return lambda answer: [model(value) for value in json_object(answer, key)[key]]


def _published(answer: Answer) -> list[Published]:
    return [Published.from_json(value) for value in json_object(answer, "events")["events"]]


# -- building requests ----------------------------------------------------------------------


def iso(moment: datetime | str) -> str:
    """A time as the server reads it; a naive datetime is taken as UTC."""
    if isinstance(moment, str):
        return moment
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    text = moment.astimezone(UTC).isoformat(timespec="microseconds")
    return text.replace("+00:00", "Z")


def _joined(values: Values) -> str | None:
    if values is None:
        return None
    if isinstance(values, str):
        return values
    return ",".join(values)


def _scalar(value: Scalar) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def filter_params(
    *,
    type: Values = None,
    source: Values = None,
    exclude_source: Values = None,
    subject: Values = None,
    trace_id: Values = None,
    where: Where = None,
) -> list[tuple[str, str]]:
    """The filter of DESIGN.md section 4 as query parameters.

    ``where`` maps ``data.<path>`` or ``metadata.<path>`` to a value, or to several (any of).
    """
    params: list[tuple[str, str]] = []
    for name, values in (
        ("type", type),
        ("source", source),
        ("exclude_source", exclude_source),
        ("subject", subject),
        ("trace_id", trace_id),
    ):
        joined = _joined(values)
        if joined is not None:
            params.append((name, joined))
    for path, value in (where or {}).items():
        if isinstance(value, str | int | float | bool):
            params.append((path, _scalar(value)))
        else:
            params.append((path, ",".join(_scalar(v) for v in value)))
    return params


def _optional(params: list[tuple[str, str]], **values: Any) -> list[tuple[str, str]]:
    for name, value in values.items():
        if value is None:
            continue
        params.append((name, iso(value) if isinstance(value, datetime) else _scalar(value)))
    return params


def _body(value: Any) -> bytes:
    return orjson.dumps(value)


def _get(path: str, params: Iterable[tuple[str, str]] = ()) -> Call:
    return Call("GET", path, tuple(params), safe=True)


def _send(method: str, path: str, body: Any = _NO_VALUE, *, safe: bool = False) -> Call:
    if body is _NO_VALUE:
        return Call(method, path, safe=safe)
    return Call(method, path, body=_body(body), headers=_JSON, safe=safe)


def _id(value: str) -> str:
    """A path segment; ids never contain a slash, so one is refused before it is sent."""
    if not value or "/" in value:
        raise TidingsError("invalid_parameter", f"{value!r} is not an id", status=None)
    return value


# -- events ---------------------------------------------------------------------------------


def event_body(
    type: str,
    data: Any = None,
    *,
    source: str | None = None,
    subject: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    id: str | None = None,
    time: Moment = None,
    trace_id: str | None = None,
    idempotency_key: str | None = None,
) -> dict[str, Any]:
    """One event input (DESIGN.md section 4); fields left out get the server's defaults."""
    event: dict[str, Any] = {"type": type}
    if data is not None:
        event["data"] = data
    optional = {
        "source": source,
        "subject": subject,
        "metadata": dict(metadata) if metadata is not None else None,
        "id": id,
        "time": iso(time) if time is not None else None,
        "trace_id": trace_id,
        "idempotency_key": idempotency_key,
    }
    event.update({k: v for k, v in optional.items() if v is not None})
    return event


def publish(
    type: str,
    data: Any = None,
    *,
    source: str | None = None,
    subject: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    id: str | None = None,
    time: Moment = None,
    trace_id: str | None = None,
    idempotency_key: str | None = None,
) -> Op[Published]:
    """Publish one event. With an ``idempotency_key`` a repeat stores once (and is retried
    after a lost answer); the repeat's answer has ``duplicate=True``."""
    event = event_body(
        type,
        data,
        source=source,
        subject=subject,
        metadata=metadata,
        id=id,
        time=time,
        trace_id=trace_id,
        idempotency_key=idempotency_key,
    )
    call = _send("POST", "/v1/events", event, safe=idempotency_key is not None)
    return Op(call, _model(Published.from_json, "id", "seq"))


def publish_batch(events: Sequence[Mapping[str, Any]]) -> Op[list[Published]]:
    """Publish events in one request, all or none (build each with :func:`event_body` or as
    a dict). Retried after a lost answer only when every event has an idempotency key."""
    if not events:
        raise TidingsError("invalid_parameter", "a batch needs at least one event")
    safe = all(e.get("idempotency_key") for e in events)
    return Op(_send("POST", "/v1/events", list(events), safe=safe), _published)


def get_event(event_id: str) -> Op[Event]:
    """One event by its id."""
    return Op(_get(f"/v1/events/{_id(event_id)}"), _model(Event.from_json, "id", "seq"))


def query(
    *,
    type: Values = None,
    source: Values = None,
    exclude_source: Values = None,
    subject: Values = None,
    trace_id: Values = None,
    where: Where = None,
    since: Moment = None,
    until: Moment = None,
    time_since: Moment = None,
    time_until: Moment = None,
    after: int | None = None,
    before: int | None = None,
    order: Order | None = None,
    limit: int | None = None,
    cursor: str | None = None,
    tenant: str | None = None,
) -> Pager[Event]:
    """History matching the filter; ``limit`` is the page size (the server's default 100).
    ``tenant``: another tenant's history (a root key only)."""
    params = filter_params(
        type=type,
        source=source,
        exclude_source=exclude_source,
        subject=subject,
        trace_id=trace_id,
        where=where,
    )
    _optional(
        params,
        since=since,
        until=until,
        time_since=time_since,
        time_until=time_until,
        after=after,
        before=before,
        order=order,
        limit=limit,
        cursor=cursor,
        tenant=tenant,
    )
    return Pager(_get("/v1/events", params), "events", Event.from_json)


def export(
    *,
    format: ExportFormat = "ndjson",
    type: Values = None,
    source: Values = None,
    exclude_source: Values = None,
    subject: Values = None,
    trace_id: Values = None,
    where: Where = None,
    since: Moment = None,
    until: Moment = None,
    order: Order | None = None,
    limit: int | None = None,
    tenant: str | None = None,
) -> Call:
    """The export request: every matching event, streamed, oldest first by default."""
    params: list[tuple[str, str]] = [("format", format)]
    params += filter_params(
        type=type,
        source=source,
        exclude_source=exclude_source,
        subject=subject,
        trace_id=trace_id,
        where=where,
    )
    _optional(params, since=since, until=until, order=order, limit=limit, tenant=tenant)
    return _get("/v1/events/export", params)


def stats(tenant: str | None = None) -> Op[dict[str, Any]]:
    """Counts by type, source and hour, the store, streams and deliveries (of ``tenant``
    with a root key, else of the key's own)."""
    return Op(_get("/v1/stats", _optional([], tenant=tenant)), _model(dict, "events"))


def ready() -> Op[dict[str, Any]]:
    """The readiness report (store, backplane, adapters); raises while not ready."""
    return Op(_get("/readyz"), _model(dict))


# -- webhooks and deliveries ----------------------------------------------------------------


def create_webhook(
    url: str,
    events: Sequence[str] = ("#",),
    *,
    source: Values = None,
    exclude_source: Values = None,
    subject: Values = None,
    trace_id: Values = None,
    where: Where = None,
    secret: str | None = None,
    active: bool = True,
    description: str | None = None,
    rate_limit: float | None = None,
    headers: Mapping[str, str] | None = None,
    tenant: str | None = None,
) -> Op[Webhook]:
    """Register an endpoint for the ``events`` type patterns and the other filters. The answer
    carries the signing ``secret`` (generated unless given); it is not shown again.
    ``tenant``: register it in another tenant (a root key only)."""
    body: dict[str, Any] = {"url": url, "events": list(events), "active": active}
    criteria: dict[str, Any] = {}
    for name, values in (
        ("source", source),
        ("exclude_source", exclude_source),
        ("subject", subject),
        ("trace_id", trace_id),
    ):
        if values is not None:  # kept as given: the endpoint shows its filter that way
            criteria[name] = values if isinstance(values, str) else list(values)
    criteria.update(filter_params(where=where))
    if criteria:
        body["filter"] = criteria
    for name, value in (
        ("secret", secret),
        ("description", description),
        ("rate_limit", rate_limit),
        ("headers", dict(headers) if headers is not None else None),
        ("tenant", tenant),
    ):
        if value is not None:
            body[name] = value
    return Op(_send("POST", "/v1/webhooks", body), _model(Webhook.from_json, "id", "url"))


def list_webhooks(tenant: str | None = None) -> Op[list[Webhook]]:
    """Every endpoint (secrets are not shown); another tenant's with a root key. An endpoint,
    its deliveries and dead letters are found by id in any tenant with a root key."""
    call = _get("/v1/webhooks", _optional([], tenant=tenant))
    return Op(call, _listed(Webhook.from_json, "webhooks"))


def get_webhook(webhook_id: str) -> Op[Webhook]:
    return Op(_get(f"/v1/webhooks/{_id(webhook_id)}"), _model(Webhook.from_json, "id", "url"))


def update_webhook(
    webhook_id: str,
    *,
    url: str = _NO_VALUE,
    events: Sequence[str] = _NO_VALUE,
    filter: Mapping[str, str] = _NO_VALUE,
    active: bool = _NO_VALUE,
    description: str | None = _NO_VALUE,
    rate_limit: float | None = _NO_VALUE,
    headers: Mapping[str, str] | None = _NO_VALUE,
) -> Op[Webhook]:
    """Change the given fields only; ``None`` clears an optional one. Reactivating a disabled
    endpoint is ``active=True``."""
    given = {
        "url": url,
        "events": list(events) if events is not _NO_VALUE else _NO_VALUE,
        "filter": dict(filter) if filter is not _NO_VALUE else _NO_VALUE,
        "active": active,
        "description": description,
        "rate_limit": rate_limit,
        "headers": dict(headers) if headers not in (None, _NO_VALUE) else headers,
    }
    body = {k: v for k, v in given.items() if v is not _NO_VALUE}
    if not body:
        raise TidingsError("invalid_parameter", "name at least one field to change")
    call = _send("PATCH", f"/v1/webhooks/{_id(webhook_id)}", body)
    return Op(call, _model(Webhook.from_json, "id", "url"))


def delete_webhook(webhook_id: str) -> Op[None]:
    """Delete an endpoint; its pending deliveries are cancelled."""
    return Op(_send("DELETE", f"/v1/webhooks/{_id(webhook_id)}"), _nothing)


def rotate_secret(webhook_id: str, secret: str | None = None) -> Op[Webhook]:
    """A new signing secret (generated unless given); the old one keeps signing for a while."""
    body = {"secret": secret} if secret is not None else {}
    call = _send("POST", f"/v1/webhooks/{_id(webhook_id)}/rotate-secret", body)
    return Op(call, _model(Webhook.from_json, "id", "url"))


def replay(
    webhook_id: str, *, since: Moment = None, until: Moment = None, only_failed: bool = False
) -> Op[int]:
    """Send a window of stored events to the endpoint again; the answer is how many."""
    body: dict[str, Any] = {"only_failed": only_failed}
    if since is not None:
        body["since"] = iso(since)
    if until is not None:
        body["until"] = iso(until)
    call = _send("POST", f"/v1/webhooks/{_id(webhook_id)}/replay", body)
    return Op(call, lambda answer: int(json_object(answer, "replayed")["replayed"]))


def deliveries(
    webhook_id: str,
    *,
    status: DeliveryStatus | None = None,
    limit: int | None = None,
    cursor: str | None = None,
) -> Pager[Delivery]:
    """An endpoint's deliveries, newest first."""
    params = _optional([], status=status, limit=limit, cursor=cursor)
    call = _get(f"/v1/webhooks/{_id(webhook_id)}/deliveries", params)
    return Pager(call, "deliveries", Delivery.from_json)


def get_delivery(delivery_id: str) -> Op[Delivery]:
    call = _get(f"/v1/deliveries/{_id(delivery_id)}")
    return Op(call, _model(Delivery.from_json, "id", "status"))


def retry_delivery(delivery_id: str) -> Op[Delivery]:
    """Send a delivery once more now (410 ``event_purged`` when retention took its event)."""
    call = _send("POST", f"/v1/deliveries/{_id(delivery_id)}/retry")
    return Op(call, _model(Delivery.from_json, "id", "status"))


# -- dead letters ---------------------------------------------------------------------------


def dead_letters(
    *,
    source: Values = None,
    topic: Values = None,
    reason: Values = None,
    since: Moment = None,
    until: Moment = None,
    order: Order | None = None,
    limit: int | None = None,
    cursor: str | None = None,
    tenant: str | None = None,
) -> Pager[DeadLetter]:
    """Parked input, newest first by default; another tenant's with a root key."""
    params = [
        (name, joined)
        for name, joined in (
            ("source", _joined(source)),
            ("topic", _joined(topic)),
            ("reason", _joined(reason)),
        )
        if joined is not None
    ]
    _optional(
        params, since=since, until=until, order=order, limit=limit, cursor=cursor, tenant=tenant
    )
    return Pager(_get("/v1/dead-letters", params), "dead_letters", DeadLetter.from_json)


def get_dead_letter(letter_id: str) -> Op[DeadLetter]:
    call = _get(f"/v1/dead-letters/{_id(letter_id)}")
    return Op(call, _model(DeadLetter.from_json, "id", "reason"))


def delete_dead_letter(letter_id: str) -> Op[None]:
    return Op(_send("DELETE", f"/v1/dead-letters/{_id(letter_id)}"), _nothing)


def redrive_dead_letter(letter_id: str) -> Op[list[Published]]:
    """Map a dead letter again with its source's current configuration."""
    call = _send("POST", f"/v1/dead-letters/{_id(letter_id)}/redrive")
    return Op(call, _published)


def redrive_dead_letters(
    *,
    source: Values = None,
    topic: Values = None,
    reason: Values = None,
    since: Moment = None,
    until: Moment = None,
    tenant: str | None = None,
) -> Op[Redriven]:
    """Redrive every dead letter that matches (all of them when nothing is given), in
    ``tenant`` with a root key, else in the key's own."""
    body: dict[str, Any] = {}
    for name, value in (("source", source), ("topic", topic), ("reason", reason)):
        joined = _joined(value)
        if joined is not None:
            body[name] = joined
    for name, moment in (("since", since), ("until", until)):
        if moment is not None:
            body[name] = iso(moment)
    if tenant is not None:
        body["tenant"] = tenant
    call = _send("POST", "/v1/dead-letters/redrive", body)
    return Op(call, _model(Redriven.from_json, "redriven"))


# -- keys and tenants (when auth is on) -----------------------------------------------------


def create_key(
    name: str,
    scopes: Sequence[Scope | str],
    *,
    tenant: str | None = None,
    rate_limit: float | None = None,
    max_streams: int | None = None,
) -> Op[Key]:
    """A new API key with ``scopes`` (publish, subscribe, admin, root); its secret
    (``Key.key``) is shown only in this answer."""
    body: dict[str, Any] = {"name": name, "scopes": list(scopes)}
    for field, value in (
        ("tenant", tenant),
        ("rate_limit", rate_limit),
        ("max_streams", max_streams),
    ):
        if value is not None:
            body[field] = value
    return Op(_send("POST", "/v1/keys", body), _model(Key.from_json, "id"))


def list_keys(tenant: str | None = None) -> Op[list[Key]]:
    """Keys by prefix (never the keys themselves); another tenant's with a root key."""
    params = [("tenant", tenant)] if tenant else []
    return Op(_get("/v1/keys", params), _listed(Key.from_json, "keys"))


def get_key(key_id: str) -> Op[Key]:
    return Op(_get(f"/v1/keys/{_id(key_id)}"), _model(Key.from_json, "id"))


def revoke_key(key_id: str) -> Op[None]:
    """Revoke a key at once; its open streams are closed."""
    return Op(_send("DELETE", f"/v1/keys/{_id(key_id)}"), _nothing)


def create_tenant(tenant_id: str, name: str | None = None) -> Op[Tenant]:
    body: dict[str, Any] = {"id": tenant_id}
    if name is not None:
        body["name"] = name
    return Op(_send("POST", "/v1/tenants", body), _model(Tenant.from_json, "id"))


def list_tenants() -> Op[list[Tenant]]:
    return Op(_get("/v1/tenants"), _listed(Tenant.from_json, "tenants"))
