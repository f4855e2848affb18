"""Hooks of the schemathesis run over /openapi.json (SCHEMATHESIS_HOOKS names this module)."""

from __future__ import annotations

from typing import Any

import schemathesis


@schemathesis.hook
def before_call(context: schemathesis.HookContext, case: schemathesis.Case, **kwargs: Any) -> None:
    """Values the generated cases get wrong whatever the document says, set right here:

    * a cursor is a token the server made; any other is rightly refused, so none is invented
      (the client and query tests follow real cursors);
    * an endpoint's host is resolved at registration and invented names have no DNS here, so
      every URL points at this machine (the server allows private destinations);
    * ``/v1/stats/counts`` counts at most 2,000 buckets between ``since`` and ``until`` (or
      now), a bound across two values and the clock that no schema can state: its window is
      left to the default;
    * a tenant named must exist, so a tenant in a body (a new key's, a new endpoint's) or in
      ``?tenant=`` is ``default``;
    * ``payload`` is another name for ``data``, so an event has one of the two; the document
      says so (``not: {required: [data, payload]}``) but the boundary cases ignore ``not``;
    * integers in an event's free-form ``data`` and ``metadata`` must fit in 64 bits (said in
      the description; JSON Schema cannot say it of any nested value), so larger ones are sent
      as floats.
    """
    if isinstance(case.query, dict):
        case.query.pop("cursor", None)
        if case.operation.path == "/v1/stats/counts":
            case.query.pop("since", None)
            case.query.pop("until", None)
    if (
        case.operation.path.startswith("/v1/webhooks")
        and isinstance(case.body, dict)
        and isinstance(case.body.get("url"), str)
    ):
        case.body["url"] = "http://127.0.0.1:9/hook"
    if isinstance(case.body, dict) and case.body.get("tenant"):
        case.body["tenant"] = "default"
    if isinstance(case.query, dict) and case.query.get("tenant"):
        case.query["tenant"] = "default"
    if case.operation.path == "/v1/events" and case.operation.method.lower() == "post":
        case.body = _fit_integers(case.body)
        events = case.body if isinstance(case.body, list) else [case.body]
        for event in events:
            if isinstance(event, dict) and "data" in event and "payload" in event:
                del event["payload"]


def _fit_integers(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and not -(1 << 63) <= value < (1 << 64):
        return float(value)
    if isinstance(value, list):
        return [_fit_integers(item) for item in value]
    if isinstance(value, dict):
        return {key: _fit_integers(item) for key, item in value.items()}
    return value
