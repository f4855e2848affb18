"""PostgreSQL going away while Tidings runs: publishes answer 503 ``store_unavailable`` (never
a 2xx for an event not stored), ``/readyz`` answers 503, and both recover by themselves."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.integration.server import ServerProcess
from tests.integration.tcp_proxy import TcpProxy
from tests.pg import create_schema

pytestmark = pytest.mark.postgres


def test_publishes_answer_503_while_postgresql_is_away_and_recover_by_themselves(
    tmp_path: Path, pg_database: str
) -> None:
    proxy = TcpProxy(5432).start()
    schema = create_schema(pg_database)
    store = f"postgresql://postgres@127.0.0.1:{proxy.port}/{pg_database}?search_path={schema}"
    server = ServerProcess(tmp_path / "data", env={"TIDINGS_STORE": store}).start()
    acknowledged: list[str] = []
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:

            def publish(n: int) -> httpx.Response:
                answer = http.post("/v1/events", json={"type": "outage.test", "data": n})
                if answer.status_code == 201:
                    acknowledged.append(answer.json()["id"])
                return answer

            assert publish(0).status_code == 201
            proxy.cut()
            for n in range(1, 6):
                answer = publish(n)
                assert answer.status_code == 503, answer.text
                assert answer.json()["error"]["code"] == "store_unavailable"
            assert http.get("/readyz").status_code == 503

            proxy.restore()
            deadline = time.monotonic() + 30
            while http.get("/readyz").status_code != 200:
                assert time.monotonic() < deadline, "not ready again after PostgreSQL came back"
                time.sleep(0.1)
            answers = [publish(n).status_code for n in range(6, 9)]
            assert answers == [201, 201, 201]
            stored = [e["id"] for e in http.get("/v1/events?order=asc").json()["events"]]
            assert stored == acknowledged
    finally:
        server.stop()
        proxy.cut()
