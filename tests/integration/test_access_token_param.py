"""``?access_token=`` (the key of a browser, which cannot set headers on an EventSource or a
download) is never read as a filter field by the stream or the export."""

from __future__ import annotations

import httpx

from tests.integration.server import ServerProcess


def test_the_stream_and_the_export_accept_access_token(server: ServerProcess) -> None:
    httpx.post(server.url + "/v1/events", json={"type": "a.b"}).raise_for_status()
    params = {"access_token": "tdk_x", "last_event_id": "0"}
    with (
        httpx.Client(base_url=server.url, timeout=10) as client,
        client.stream("GET", "/v1/events/stream", params=params) as stream,
    ):
        assert stream.status_code == 200
        first = next(stream.iter_lines())
        assert first == "event: connected"
    export = httpx.get(
        server.url + "/v1/events/export", params={"access_token": "tdk_x", "format": "ndjson"}
    )
    assert export.status_code == 200 and '"a.b"' in export.text
