"""The ``tidings`` command line, run as a real process against a real server process."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.server import ServerProcess, ServerStore, free_port


def tidings(
    *args: str, url: str | None = None, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m tidings`` with no TIDINGS_* settings but ``url`` and ``env``."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("TIDINGS_")}
    environ["COLUMNS"] = "200"  # a wide table, so cells are not folded
    if url is not None:
        environ["TIDINGS_URL"] = url
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "tidings", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=environ,
        timeout=60,
    )


def ndjson(events: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(event) + "\n" for event in events)


def stored(server: ServerProcess, source: str) -> list[dict[str, Any]]:
    """Every stored event of ``source``, oldest first, read through the HTTP API."""
    answer = httpx.get(server.url + "/v1/events/export", params={"source": source}, timeout=30)
    assert answer.status_code == 200, answer.text
    return [json.loads(line) for line in answer.text.splitlines()]


def unique_source() -> str:
    return "cli-" + uuid.uuid4().hex[:12]


def assert_clean_failure(result: subprocess.CompletedProcess[str], code: int = 1) -> None:
    assert result.returncode == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr


@pytest.fixture(scope="module")
def hub(
    tmp_path_factory: pytest.TempPathFactory, server_store: ServerStore
) -> Iterator[ServerProcess]:
    """One server for the tests that keep to their own source."""
    server = ServerProcess(tmp_path_factory.mktemp("cli") / "data", store=server_store).start()
    yield server
    server.stop()


PUBLISH_LINE = re.compile(r"^id=(\S+) seq=(\d+) duplicate=(true|false)$")


def test_publish_prints_id_seq_and_duplicate_and_stores_every_option(hub: ServerProcess) -> None:
    source = unique_source()
    result = tidings(
        "publish", "door.opened", "--data", '{"door": "front"}', "--source", source,
        "--subject", "door-1", "--metadata", '{"by": "al"}', "--idempotency-key", f"{source}-1",
        "--time", "2026-01-02T03:04:05Z",
        url=hub.url,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    match = PUBLISH_LINE.match(result.stdout.strip())
    assert match is not None, result.stdout
    event_id, seq, duplicate = match.groups()
    assert duplicate == "false"
    event = httpx.get(f"{hub.url}/v1/events/{event_id}").json()
    assert event["seq"] == int(seq)
    assert (event["type"], event["source"], event["subject"]) == ("door.opened", source, "door-1")
    assert event["data"] == {"door": "front"}
    assert event["metadata"] == {"by": "al"}
    assert event["idempotency_key"] == f"{source}-1"
    assert event["time"] == "2026-01-02T03:04:05.000Z"


def test_publishing_the_same_idempotency_key_again_reports_a_duplicate_of_the_first(
    hub: ServerProcess,
) -> None:
    key = unique_source()
    first = tidings("publish", "order.paid", "-d", '{"total": 42}', "-k", key, url=hub.url)
    again = tidings("publish", "order.paid", "-d", '{"total": 42}', "-k", key, url=hub.url)
    assert first.returncode == again.returncode == 0
    first_match = PUBLISH_LINE.match(first.stdout.strip())
    again_match = PUBLISH_LINE.match(again.stdout.strip())
    assert first_match is not None and again_match is not None
    assert again_match.group(1, 2) == first_match.group(1, 2)
    assert (first_match.group(3), again_match.group(3)) == ("false", "true")


def test_an_event_the_server_refuses_prints_code_message_and_details(hub: ServerProcess) -> None:
    result = tidings("publish", "not a type!", url=hub.url)
    assert_clean_failure(result)
    assert result.stderr.startswith("error: validation_error: ")
    assert "body.type: " in result.stderr
    assert result.stdout == ""


def test_data_that_is_not_json_is_a_usage_error_and_nothing_is_sent(hub: ServerProcess) -> None:
    source = unique_source()
    result = tidings("publish", "a.b", "--data", "{oops", "--source", source, url=hub.url)
    assert_clean_failure(result, code=2)
    assert "--data" in result.stderr
    assert "not valid JSON" in result.stderr
    assert stored(hub, source) == []


def publishes_answered_201(server: ServerProcess) -> float:
    """How many publish requests the server answered with 201, from its metrics."""
    metrics = httpx.get(server.url + "/metrics").text
    wanted = {"route": "/v1/events", "method": "POST", "status": "201"}
    return sum(
        sample.value
        for family in text_string_to_metric_families(metrics)
        for sample in family.samples
        if sample.name == "tidings_http_requests_total" and sample.labels == wanted
    )


def test_bulk_publish_from_a_file_sends_batches_of_1000_and_stores_every_line(
    hub: ServerProcess, tmp_path: Path
) -> None:
    source = unique_source()
    events = [{"type": "bulk.item", "source": source, "data": {"i": i}} for i in range(2500)]
    (tmp_path / "events.ndjson").write_text(ndjson(events))
    requests_before = publishes_answered_201(hub)
    result = tidings("publish", "--file", str(tmp_path / "events.ndjson"), url=hub.url)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "published: 2500 stored, 0 duplicates"
    assert publishes_answered_201(hub) - requests_before == 3
    assert [e["data"]["i"] for e in stored(hub, source)] == list(range(2500))


def test_bulk_publish_from_stdin_stores_every_line_and_counts_repeats_as_duplicates(
    hub: ServerProcess,
) -> None:
    source = unique_source()
    lines = ndjson(
        [
            {"type": "bulk.item", "source": source, "idempotency_key": f"{source}-{i}"}
            for i in range(2500)
        ]
    )
    first = tidings("publish", "--file", "-", url=hub.url, stdin=lines)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == "published: 2500 stored, 0 duplicates"
    again = tidings("publish", "--file", "-", "--batch-size", "700", url=hub.url, stdin=lines)
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == "published: 0 stored, 2500 duplicates"
    assert len(stored(hub, source)) == 2500


def test_bulk_publish_names_the_lines_that_are_not_json_or_that_the_server_refuses(
    hub: ServerProcess, tmp_path: Path
) -> None:
    source = unique_source()
    lines = [
        json.dumps({"type": "ok.one", "source": source, "data": {"line": 1}}),
        "{not json",
        "",
        json.dumps({"type": "ok.four", "source": source, "data": {"line": 4}}),
        json.dumps({"source": source, "data": {"line": 5}}),
        json.dumps({"type": "ok.six", "source": source, "time": "never", "data": {"line": 6}}),
        json.dumps({"type": "ok.seven", "source": source, "data": {"line": 7}}),
    ]
    (tmp_path / "mixed.ndjson").write_text("\n".join(lines) + "\n")
    # Batches of two: lines 5 and 6 are the first and second of the second batch.
    result = tidings(
        "publish", "-f", str(tmp_path / "mixed.ndjson"), "--batch-size", "2", url=hub.url
    )
    assert_clean_failure(result)
    errors = result.stderr.splitlines()
    assert errors[0].startswith("error: line 2: not valid JSON")
    assert errors[1].startswith("error: line 5: validation_error: type: ")
    assert errors[2].startswith("error: line 6: validation_error: time: ")
    assert len(errors) == 3
    assert result.stdout.strip() == "published: 3 stored, 0 duplicates, 3 failed"
    assert [e["data"]["line"] for e in stored(hub, source)] == [1, 4, 7]


def test_bulk_publish_splits_a_batch_larger_than_the_server_accepts(
    start_server: Callable[..., ServerProcess],
) -> None:
    server = start_server(env={"TIDINGS_MAX_BODY_BYTES": "4096"})
    source = unique_source()
    events = [
        {"type": "big.item", "source": source, "data": {"i": i, "pad": "x" * 150}}
        for i in range(100)
    ]
    result = tidings("publish", "--file", "-", url=server.url, stdin=ndjson(events))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "published: 100 stored, 0 duplicates"
    assert [e["data"]["i"] for e in stored(server, source)] == list(range(100))


@pytest.fixture(scope="module")
def history(hub: ServerProcess) -> tuple[str, list[dict[str, Any]]]:
    """A source with 25 events of three types, published once for the query tests."""
    source = unique_source()
    events = []
    for i in range(25):
        kind = ("room.entered", "room.left", "door.opened")[i % 3]
        room = "kitchen" if i % 2 else "hall"
        events.append(
            {"type": kind, "source": source, "subject": f"s{i}", "data": {"i": i, "room": room}}
        )
    result = tidings("publish", "-f", "-", "-q", url=hub.url, stdin=ndjson(events))
    assert result.returncode == 0, result.stderr
    return source, stored(hub, source)


def test_query_prints_a_table_of_the_matching_events(
    hub: ServerProcess, history: tuple[str, list[dict[str, Any]]]
) -> None:
    source, events = history
    result = tidings(
        "query",
        "--source",
        source,
        "--type",
        "room.*",
        "--before",
        str(events[6]["seq"]),
        url=hub.url,
    )
    assert result.returncode == 0, result.stderr
    rows = result.stdout.splitlines()
    assert rows[0].split() == ["seq", "time", "type", "source", "subject", "data"]
    wanted = [e for e in reversed(events[:6]) if e["type"].startswith("room.")]
    assert [row.split()[:5] for row in rows[1:]] == [
        [str(e["seq"]), e["time"], e["type"], source, e["subject"]] for e in wanted
    ]


def test_query_table_cuts_long_data_and_shows_markup_as_text(hub: ServerProcess) -> None:
    source = unique_source()
    text = "[bold]loud[/bold] " + "word " * 40
    published = tidings(
        "publish", "note.long", "-d", json.dumps({"text": text}), "-s", source, url=hub.url
    )
    assert published.returncode == 0, published.stderr
    result = tidings("query", "--source", source, url=hub.url)
    assert result.returncode == 0, result.stderr
    row = result.stdout.splitlines()[1]
    assert '{"text":"[bold]loud[/bold] word word' in row
    assert row.rstrip().endswith("…")
    assert text.strip() not in result.stdout


def test_query_json_prints_raw_events_matching_the_where_filter(
    hub: ServerProcess, history: tuple[str, list[dict[str, Any]]]
) -> None:
    source, events = history
    result = tidings(
        "query", "-s", source, "--where", "data.room=kitchen", "--type", "room.#",
        "--order", "asc", "--json", url=hub.url,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    printed = [json.loads(line) for line in result.stdout.splitlines()]
    assert printed == [
        e for e in events if e["data"]["room"] == "kitchen" and e["type"].startswith("room.")
    ]


def test_query_since_and_until_take_a_duration_ago(
    hub: ServerProcess, history: tuple[str, list[dict[str, Any]]]
) -> None:
    source, events = history
    recent = tidings("query", "-s", source, "--since", "10m", "--json", url=hub.url)
    assert recent.returncode == 0, recent.stderr
    assert len(recent.stdout.splitlines()) == len(events)
    older = tidings("query", "-s", source, "--until", "10m", "--json", url=hub.url)
    assert older.returncode == 0, older.stderr
    assert older.stdout == ""


def test_query_all_follows_the_next_cursors_to_the_last_page(
    hub: ServerProcess, history: tuple[str, list[dict[str, Any]]]
) -> None:
    source, events = history
    everything = tidings(
        "query", "-s", source, "--limit", "10", "--order", "asc", "--all", "--json", url=hub.url
    )
    assert everything.returncode == 0, everything.stderr
    assert [json.loads(line) for line in everything.stdout.splitlines()] == events
    assert everything.stderr == ""

    first = tidings("query", "-s", source, "--limit", "10", "--order", "asc", "--json", url=hub.url)
    assert [json.loads(line)["seq"] for line in first.stdout.splitlines()] == [
        e["seq"] for e in events[:10]
    ]
    hint = re.search(r"--all, or --cursor (\S+)", first.stderr)
    assert hint is not None, first.stderr
    second = tidings(
        "query", "-s", source, "--limit", "10", "--order", "asc", "--json",
        "--cursor", hint.group(1), url=hub.url,
    )  # fmt: skip
    assert [json.loads(line)["seq"] for line in second.stdout.splitlines()] == [
        e["seq"] for e in events[10:20]
    ]


def test_query_with_a_parameter_the_server_refuses_prints_its_error(hub: ServerProcess) -> None:
    result = tidings("query", "--since", "last tuesday", url=hub.url)
    assert_clean_failure(result)
    assert result.stderr.startswith("error: invalid_parameter: ")
    assert "query.since: " in result.stderr


def test_export_ndjson_to_a_file_holds_exactly_the_published_events(
    hub: ServerProcess, history: tuple[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    source, events = history
    target = tmp_path / "out.ndjson"
    result = tidings("export", "--source", source, "--output", str(target), url=hub.url)
    assert result.returncode == 0, result.stderr
    assert [json.loads(line) for line in target.read_text().splitlines()] == events
    assert [e["data"]["i"] for e in events] == list(range(25))
    assert f"exported 25 events ({target.stat().st_size} bytes) to {target}" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.ndjson"]


def test_export_csv_has_one_row_per_event_with_data_as_json(
    hub: ServerProcess, history: tuple[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    source, events = history
    target = tmp_path / "out.csv"
    result = tidings(
        "export",
        "-s",
        source,
        "-t",
        "door.opened",
        "--format",
        "csv",
        "-o",
        str(target),
        url=hub.url,
    )
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(target.read_text())))
    doors = [e for e in events if e["type"] == "door.opened"]
    assert [
        (int(r["seq"]), r["id"], r["type"], r["subject"], json.loads(r["data"])) for r in rows
    ] == [(e["seq"], e["id"], e["type"], e["subject"], e["data"]) for e in doors]


def test_export_without_output_streams_to_stdout(
    hub: ServerProcess, history: tuple[str, list[dict[str, Any]]]
) -> None:
    source, events = history
    result = tidings("export", "-s", source, "--order", "desc", "--limit", "5", url=hub.url)
    assert result.returncode == 0, result.stderr
    assert [json.loads(line) for line in result.stdout.splitlines()] == events[::-1][:5]


def test_export_the_server_refuses_leaves_no_file_behind(
    hub: ServerProcess, tmp_path: Path
) -> None:
    result = tidings(
        "export", "--since", "not-a-time", "-o", str(tmp_path / "out.ndjson"), url=hub.url
    )
    assert_clean_failure(result)
    assert result.stderr.startswith("error: invalid_parameter: ")
    assert list(tmp_path.iterdir()) == []


def test_a_choice_outside_its_set_is_a_usage_error_naming_the_choices(hub: ServerProcess) -> None:
    result = tidings("export", "--order", "sideways", url=hub.url)
    assert result.returncode == 2
    assert "'asc', 'desc'" in result.stderr


@pytest.mark.parametrize(
    "args",
    [["publish", "a.b"], ["publish", "--file", "-"], ["query"], ["keys", "list"]],
    ids=" ".join,
)
def test_a_command_without_a_server_names_the_url_and_suggests_tidings_serve(
    args: list[str],
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = tidings(*args, url=url, stdin='{"type": "a.b"}\n')
    assert_clean_failure(result)
    assert result.stderr.startswith(
        f"error: cannot reach the Tidings server at {url} (connection refused)"
    )
    assert "tidings serve" in result.stderr


def test_url_option_wins_over_the_environment_which_wins_over_the_config_file(
    hub: ServerProcess, tmp_path: Path
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    config = tmp_path / "tidings.toml"
    config.write_text(f'url = "{hub.url}"\n')
    from_config = tidings("query", "--limit", "1", env={"TIDINGS_CONFIG": str(config)})
    assert from_config.returncode == 0, from_config.stderr
    from_env = tidings("query", "--limit", "1", url=dead, env={"TIDINGS_CONFIG": str(config)})
    assert dead in from_env.stderr
    from_flag = tidings("query", "--limit", "1", "--url", hub.url, url=dead)
    assert from_flag.returncode == 0, from_flag.stderr


HELP_MENTIONS = {
    "publish": ["--file", "--batch-size", "--idempotency-key", "TIDINGS_URL"],
    "query": ["--where", "--all", "--json", "TIDINGS_URL"],
    "export": ["--format", "--output", "TIDINGS_URL"],
    "serve": ["--host", "--port", "--data-dir", "--store", "--config", "--log-level"],
    "purge": ["--older-than-days", "--data-dir"],
    "backup": ["--data-dir", "--store", "--overwrite"],
    "migrate-store": ["--from", "--to", "--resume"],
}


@pytest.mark.parametrize("command", HELP_MENTIONS)
def test_help_of_each_command_shows_examples_and_its_options(command: str) -> None:
    result = tidings(command, "--help")
    assert result.returncode == 0, result.stderr
    assert "Examples:" in result.stdout
    assert re.search(rf"^\s+tidings {command}\b", result.stdout, re.MULTILINE)
    for mention in HELP_MENTIONS[command]:
        assert mention in result.stdout


def test_purge_older_than_zero_days_deletes_the_stored_events(
    start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    data_dir = tmp_path / "purged"
    server = start_server(data_dir=data_dir)
    for i in range(3):
        assert (
            httpx.post(
                server.url + "/v1/events", json={"type": "old.news", "data": {"i": i}}
            ).status_code
            == 201
        )
    assert server.stop() == 0
    result = tidings("purge", "--older-than-days", "0", *server.store_options())
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "deleted 3 events received more than 0 days ago"
    server.start()
    assert httpx.get(server.url + "/v1/events").json()["events"] == []


def test_purge_keeps_the_events_a_bridge_rule_behind_the_webhooks_still_needs(
    start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    # The bridge's broker is down, so its rule stays at position 0; the webhook endpoint is
    # created after the events and starts at the head: only the bridge still needs them.
    config = tmp_path / "tidings.toml"
    config.write_text(
        f"""
[mqtt]
url = "mqtt://127.0.0.1:{free_port()}"
client_id = "purge-{uuid.uuid4().hex[:6]}"
[[mqtt.publish]]
events = ["#"]
topic = "tidings/{{type}}"
"""
    )
    data_dir = tmp_path / "bridged"
    env = {"TIDINGS_CONFIG": str(config), "TIDINGS_WEBHOOK_ALLOW_PRIVATE": "true"}
    server = start_server(env=env, data_dir=data_dir)
    for i in range(3):
        answer = httpx.post(server.url + "/v1/events", json={"type": "old.news", "data": {"i": i}})
        assert answer.status_code == 201
    hook = {"url": f"http://127.0.0.1:{free_port()}/hook", "events": ["never.#"]}
    assert httpx.post(server.url + "/v1/webhooks", json=hook).status_code == 201
    assert server.stop() == 0

    args = ("purge", "--older-than-days", "0", *server.store_options())
    result = tidings(*args, "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "deleted 0 events received more than 0 days ago"
    server.start()
    assert len(httpx.get(server.url + "/v1/events").json()["events"]) == 3


def test_version_prints_the_package_version() -> None:
    from tidings import __version__

    result = tidings("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"tidings {__version__}"
