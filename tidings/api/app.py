"""The ASGI application: routes, error shape, middleware and the hub's life cycle."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp

from tidings import __version__, web
from tidings.api import (
    dead_letters,
    errors,
    events,
    ingest,
    keys,
    ops,
    stats,
    streams,
    webhooks,
)
from tidings.api import openapi as openapi_document
from tidings.api.fast_paths import FastPaths
from tidings.api.middleware import RequestMetrics
from tidings.api.schemas import EVENT_IN_SCHEMA
from tidings.auth.middleware import AuthMiddleware
from tidings.auth.origins import parse_origins
from tidings.hub import Hub
from tidings.settings import Settings


def create_app(settings: Settings, hub: Hub | None = None) -> FastAPI:
    """A Tidings app; the hub starts and stops with the app's lifespan."""
    the_hub = hub or Hub(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await the_hub.start()
        try:
            yield
        finally:
            await the_hub.stop()

    app = FastAPI(
        title="Tidings",
        version=__version__,
        summary="A self-hosted event hub: publish, store, query, stream and deliver events.",
        lifespan=lifespan,
        docs_url=None,  # served by tidings.web from the vendored Swagger UI
        redoc_url=None,
    )
    app.state.hub = the_hub
    errors.install(app)
    app.include_router(streams.router)  # before /v1/events/{id}
    app.include_router(events.router)
    app.include_router(webhooks.router)
    app.include_router(ingest.router)
    app.include_router(dead_letters.router)
    app.include_router(ops.router)
    app.include_router(keys.router)
    app.include_router(stats.router)
    web.install(app)
    app.add_middleware(RequestMetrics)
    _add_schemas(app)
    return app


def create_asgi(settings: Settings, hub: Hub | None = None) -> ASGIApp:
    """What the server runs: the app, with publishes and streams answered in front of it,
    all of it behind auth (and CORS, for the origins of TIDINGS_CORS_ORIGINS)."""
    fast = FastPaths(create_app(settings, hub))
    asgi: ASGIApp = AuthMiddleware(fast, fast.hub.auth)
    origins = parse_origins(settings.cors_origins)
    if origins:
        asgi = CORSMiddleware(
            asgi,
            allow_origins=list(origins),
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=[
                "X-API-Key",
                "Authorization",
                "Content-Type",
                "Last-Event-ID",
                "Idempotency-Key",
                "traceparent",
            ],
            expose_headers=["Location", "Retry-After"],
            max_age=600,
        )
    return asgi


def _add_schemas(app: FastAPI) -> None:
    """Put the publish input schema into /openapi.json (the publish handler reads raw JSON)."""
    original = app.openapi

    def openapi() -> dict[str, object]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = original()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        defs = dict(EVENT_IN_SCHEMA.get("$defs", {}))
        components.update(defs)
        components["EventIn"] = {k: v for k, v in EVENT_IN_SCHEMA.items() if k != "$defs"}
        for name in ("PublishResult", "BatchPublishResult"):
            components.setdefault(name, _model_schema(name))
        _drop_framework_422(schema)
        openapi_document.tighten(schema)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _model_schema(name: str) -> dict[str, object]:
    from tidings.api import schemas

    model = getattr(schemas, name)
    result: dict[str, object] = model.model_json_schema(ref_template="#/components/schemas/{model}")
    result.pop("$defs", None)
    return result


def _drop_framework_422(schema: dict[str, Any]) -> None:
    """FastAPI documents a 422 for every route with parameters; Tidings answers bad
    parameters with 400 ``invalid_parameter``, so only its own 422s stay."""
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            response = operation.get("responses", {}).get("422")
            if response and "HTTPValidationError" in str(response):
                del operation["responses"]["422"]
    components = schema.get("components", {}).get("schemas", {})
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
