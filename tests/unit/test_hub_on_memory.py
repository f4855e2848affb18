"""The whole hub runs on the in-memory backend: nothing outside the store names SQLite."""

from __future__ import annotations

from pathlib import Path

from tidings.envelope import Limits, PublishContext, candidates_from_json
from tidings.hub import Hub
from tidings.settings import load_settings
from tidings.testing import memory_backend


async def test_a_hub_runs_on_the_memory_backend_without_a_file(tmp_path: Path) -> None:
    settings = load_settings(
        {"data_dir": tmp_path / "unused", "retention_days": 0, "webhook_allow_private": True}
    )
    backend = memory_backend()
    hub = Hub(settings, backend=backend)
    await hub.start()
    try:
        assert hub.delivery is not None
        endpoint = await hub.delivery.create(
            "default",
            {"url": "http://127.0.0.1:9/x", "events": ["never.#"], "filter": {}, "active": True},
        )
        body = [{"type": "thing.happened", "data": {"n": n}} for n in range(3)]
        candidates, _ = candidates_from_json(body, PublishContext(tenant="default"), Limits())
        results = await hub.publisher.publish(candidates, transport="internal")
        assert [r.seq for r in results] == [1, 2, 3]
        assert await backend.deliveries.get_endpoint("default", endpoint.id) is not None
        assert hub.router is not None
        assert await hub.router.wait_routed(3, timeout=5.0)
        assert not (tmp_path / "unused").exists()  # no SQLite file was made
    finally:
        await hub.stop()
