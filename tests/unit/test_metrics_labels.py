"""Metric labels stay bounded: route templates, and per-endpoint series removed on delete."""

from __future__ import annotations

from prometheus_client import generate_latest

from tidings import __version__, metrics


def test_routes_outside_the_routers_get_their_own_templates() -> None:
    assert metrics.route_template("/v1/webhooks/{webhook_id}", "/v1/webhooks/wh_1") == (
        "/v1/webhooks/{webhook_id}"
    )
    for path in ("/", "/docs", "/openapi.json"):
        assert metrics.route_template(None, path) == path
    assert metrics.route_template(None, "/static/app.js") == "/static/{path}"
    assert metrics.route_template(None, "/no/such/thing/123") == "unmatched"


def test_an_endpoints_attempt_series_are_removed_when_it_is_deleted() -> None:
    metrics.record_attempt("wh_test_1", "success", 0.02)
    metrics.record_attempt("wh_test_1", "timeout", 10.0)
    text = generate_latest(metrics.REGISTRY).decode()
    assert 'tidings_webhook_endpoint_attempts_total{result="timeout",webhook_id="wh_test_1"}' in (
        text
    )
    metrics.forget_endpoint("wh_test_1")
    assert "wh_test_1" not in generate_latest(metrics.REGISTRY).decode()


def test_build_info_and_process_metrics_are_exported() -> None:
    text = generate_latest(metrics.REGISTRY).decode()
    assert 'tidings_build_info{python="' in text and f'version="{__version__}"' in text
    assert "process_resident_memory_bytes" in text
    assert "python_info" in text
    assert "python_gc_collections_total" in text
