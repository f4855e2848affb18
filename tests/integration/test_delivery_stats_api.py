"""``GET /v1/stats``: each endpoint's attempts of the last 24 hours."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from tests.integration.receiver import Receiver, create_endpoint, poll, respond
from tests.integration.server import ServerProcess


def test_stats_give_each_endpoints_success_rate_over_24_hours(
    start_server: Callable[..., ServerProcess],
) -> None:
    env = {"TIDINGS_WEBHOOK_ALLOW_PRIVATE": "true", "TIDINGS_WEBHOOK_RETRY_SCHEDULE": "0"}
    server = start_server(env=env)
    with Receiver() as receiver, httpx.Client(base_url=server.url, timeout=30) as client:
        receiver.then(respond(500))
        flaky = create_endpoint(client, receiver.url, events=["a.*"])
        idle = create_endpoint(client, receiver.url, events=["never.*"])
        for _ in range(2):
            client.post("/v1/events", json={"type": "a.b"}).raise_for_status()
        receiver.wait_count(2)

        def rates() -> dict[str, dict[str, float]]:
            body = client.get("/v1/stats").json()
            found: dict[str, dict[str, float]] = body["deliveries"]["by_endpoint_24h"]
            return found

        found = poll(rates, lambda r: sum_attempts(r) == 2, what="both attempts logged")
        assert found == {flaky["id"]: {"succeeded": 1, "failed": 1, "success_rate": 0.5}}
        assert idle["id"] not in found


def sum_attempts(rates: dict[str, dict[str, float]]) -> float:
    return sum(r["succeeded"] + r["failed"] for r in rates.values())
