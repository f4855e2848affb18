"""Ingest benchmark: MQTT messages stored per second beside Mosquitto's own delivery rate to a
plain subscriber (same broker, same messages, same run), and signed-webhook ingest latency.

Usage (from the repository root)::

    .venv/bin/python bench/ingest/run.py [--messages 20000] [--webhooks 2000]

Starts a private Mosquitto on a free port and a fresh Tidings, both stopped at the end. The
MQTT figure is end to end: from the first message handed to the broker until the last one is
durably stored (acknowledged to the broker only after the commit, as in production). The peer
figure is the same messages delivered by Mosquitto to a paho subscriber that does nothing
with them: the ceiling any MQTT consumer on this machine can reach.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

ROOT = Path(__file__).resolve().parents[2]
SECRET = "bench-secret-0123456789"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_until(check: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise TimeoutError("condition not reached")


def start_broker(directory: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    conf = directory / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        "max_queued_messages 0\nmax_inflight_messages 100\n"
    )
    proc = subprocess.Popen(
        [shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def listening() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            return False

    wait_until(listening, 10)
    return proc, port


def publish_messages(port: int, topic: str, count: int) -> float:
    """Publish ``count`` QoS 1 messages; seconds until the broker acknowledged them all."""
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{os.getpid()}")
    client.max_inflight_messages_set(100)
    client.connect("127.0.0.1", port)
    client.loop_start()
    started = time.perf_counter()
    infos = []
    for n in range(count):
        body = json.dumps({"type": "bench.reading", "data": {"n": n, "at": time.time()}})
        infos.append(client.publish(topic, body, qos=1))
    for info in infos:
        info.wait_for_publish(30)
    elapsed = time.perf_counter() - started
    client.loop_stop()
    client.disconnect()
    return elapsed


def peer_rate(port: int, count: int) -> tuple[float, float]:
    """Mosquitto delivering ``count`` QoS 1 messages to a subscriber that only counts them."""
    received = 0
    done = threading.Event()

    def on_message(client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
        nonlocal received
        received += 1
        if received >= count:
            done.set()

    sub = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-peer-sub")
    sub.on_message = on_message
    sub.connect("127.0.0.1", port)
    sub.subscribe("peer/#", qos=1)
    sub.loop_start()
    time.sleep(0.5)
    started = time.perf_counter()
    publish_messages(port, "peer/readings", count)
    done.wait(120)
    elapsed = time.perf_counter() - started
    sub.loop_stop()
    sub.disconnect()
    return count / elapsed, elapsed


def start_tidings(data: Path, broker_port: int) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    config = data.parent / "tidings.toml"
    config.write_text(
        f'[sources.bench]\nverifier = "hmac-sha256"\nsecret = "{SECRET}"\n\n'
        f'[mqtt]\nurl = "mqtt://127.0.0.1:{broker_port}"\nclient_id = "tidings-bench"\n'
        '[[mqtt.subscribe]]\nfilter = "ingest/#"\nqos = 1\nstrip_prefix = "ingest"\n'
    )
    env = {**os.environ, "TIDINGS_LOG_LEVEL": "warning", "TIDINGS_CONFIG": str(config)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tidings", "serve", "--port", str(port), "--data-dir", str(data)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            return httpx.get(url + "/readyz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(ready, 30)
    time.sleep(1.0)  # the MQTT adapter connects and subscribes
    return proc, url


def stored(url: str) -> int:
    return int(httpx.get(url + "/v1/stats").json()["events"]["total"])


def mqtt_ingest_rate(url: str, broker_port: int, count: int, pid: int) -> tuple[float, float]:
    before, cpu0 = stored(url), cpu_seconds(pid)
    started = time.perf_counter()
    publish_messages(broker_port, "ingest/readings", count)
    wait_until(lambda: stored(url) >= before + count, 300)
    elapsed = time.perf_counter() - started
    return count / elapsed, (cpu_seconds(pid) - cpu0) / elapsed * 100


def webhook_latency(url: str, count: int) -> dict[str, float]:
    latencies = []
    with httpx.Client(base_url=url) as client:
        for n in range(count):
            body = json.dumps({"type": "bench.hook", "data": {"n": n}}).encode()
            signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
            started = time.perf_counter()
            answer = client.post(
                "/v1/ingest/bench",
                content=body,
                headers={"X-Signature": signature, "Content-Type": "application/json"},
            )
            latencies.append((time.perf_counter() - started) * 1000)
            if answer.status_code >= 300:
                raise RuntimeError(f"ingest answered {answer.status_code}: {answer.text}")
    latencies.sort()
    return {
        "p50": statistics.median(latencies),
        "p99": latencies[int(len(latencies) * 0.99) - 1],
        "max": latencies[-1],
        "rate": count / (sum(latencies) / 1000),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--webhooks", type=int, default=2_000)
    args = parser.parse_args()
    resource.setrlimit(resource.RLIMIT_NOFILE, (4096, 4096))
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        broker, broker_port = start_broker(directory)
        tidings, url = start_tidings(directory / "data", broker_port)
        try:
            peer, _ = peer_rate(broker_port, args.messages)
            rate, cpu = mqtt_ingest_rate(url, broker_port, args.messages, tidings.pid)
            hooks = webhook_latency(url, args.webhooks)
        finally:
            tidings.terminate()
            tidings.wait(30)
            broker.terminate()
            broker.wait(10)
    load = os.getloadavg()[0]
    print(
        f"Command: `.venv/bin/python bench/ingest/run.py --messages {args.messages} "
        f"--webhooks {args.webhooks}` (load average at the end {load:.2f})\n"
    )
    print("| measure | Tidings | Mosquitto to a plain subscriber | ratio |")
    print("|---|---:|---:|---:|")
    print(
        f"| MQTT QoS 1 messages/s, end to end (stored, acknowledged after commit) | {rate:,.0f} "
        f"| {peer:,.0f} | {rate / peer:.2f} |"
    )
    print(f"| Tidings server CPU during MQTT ingest | {cpu:.0f}% of a core | | |")
    print(
        f"\n| signed webhook (hmac-sha256), sequential | p50 {hooks['p50']:.2f} ms | "
        f"p99 {hooks['p99']:.2f} ms | max {hooks['max']:.2f} ms |"
    )
    print("|---|---:|---:|---:|")


if __name__ == "__main__":
    main()
