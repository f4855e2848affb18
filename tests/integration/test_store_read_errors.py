"""A store read that fails mid-stream: streams say ``store_error`` and end, exports end with an
error line, so that clients back off instead of reconnecting in a loop.

The store is damaged for real: a page of the events table is overwritten while the server is
stopped, and it starts again without its start-up check (``TIDINGS_SQLITE_QUICK_CHECK_S=0``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from tests.integration.damage import damage_page_holding
from tests.integration.server import ServerProcess
from tests.integration.streams_helpers import RawSSE, ws_connect, ws_recv, ws_send

EVENTS = 200


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data_dir = tmp_path_factory.mktemp("damaged") / "data"
    process = ServerProcess(data_dir, env={"TIDINGS_SQLITE_QUICK_CHECK_S": "0"}).start()
    pad = "x" * 900
    events = [
        {"type": "damaged.e", "source": "t", "data": {"marker": f"MARK-{i:04d}", "pad": pad}}
        for i in range(EVENTS)
    ]
    assert httpx.post(process.url + "/v1/events", json=events, timeout=30).status_code == 201
    assert process.stop() == 0
    damage_page_holding(data_dir / "tidings.db", b"MARK-0050")
    process.start()
    yield process
    process.stop()


async def test_sse_catch_up_gets_store_error_with_a_long_retry_then_ends(
    server: ServerProcess,
) -> None:
    stream = await RawSSE.connect(server.port, "/v1/events/stream", headers={"Last-Event-ID": "0"})
    assert stream.status == 200
    try:
        frames = await stream.collect(lambda f: False, timeout=10.0)  # to the end of the stream
    finally:
        stream.close()
    system = [f for f in frames if f.event == "system"]
    assert [f.json()["code"] for f in system] == ["store_error"], frames
    assert system[0].retry is not None and system[0].retry >= 5000
    assert system[0].json()["retry_ms"] == system[0].retry
    assert frames[-1] is system[0]


async def test_websocket_catch_up_gets_store_error_then_close_1011(server: ServerProcess) -> None:
    async with ws_connect(server) as ws:
        await ws_send(ws, {"op": "subscribe", "id": "s", "last_event_id": 0})
        messages = []
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                messages.append(await ws_recv(ws))
        assert messages[-1]["op"] == "system" and messages[-1]["code"] == "store_error"
        assert messages[-1]["retry_ms"] >= 5000
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1011


@pytest.mark.parametrize("kind", ["ndjson", "csv"])
def test_an_export_cut_short_ends_with_an_error_line(server: ServerProcess, kind: str) -> None:
    answer = httpx.get(server.url + f"/v1/events/export?format={kind}", timeout=30)
    assert answer.status_code == 200
    last = answer.text.rstrip("\n").rsplit("\n", 1)[-1]
    if kind == "ndjson":
        assert json.loads(last)["error"]["code"] == "store_error"
    else:
        assert last.startswith("error,store_error,")
    assert httpx.get(server.url + "/healthz").status_code == 200  # the server carries on


def test_the_export_command_fails_and_keeps_no_file(server: ServerProcess, tmp_path: Path) -> None:
    output = tmp_path / "events.ndjson"
    done = subprocess.run(
        [sys.executable, "-m", "tidings", "export", "--url", server.url, "-o", str(output)],
        env={**os.environ, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done.stderr
    assert "the export is incomplete" in done.stderr
    assert not output.exists()
