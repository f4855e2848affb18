from __future__ import annotations

import httpx

from tests.integration.server import ServerProcess


def test_published_event_can_be_read_back(server: ServerProcess) -> None:
    created = httpx.post(
        server.url + "/v1/events", json={"type": "door.locked", "data": {"by": "al"}}
    )
    assert created.status_code == 201
    event = httpx.get(server.url + f"/v1/events/{created.json()['id']}").json()
    assert event["type"] == "door.locked"
    assert event["data"] == {"by": "al"}
    assert event["seq"] == created.json()["seq"]
