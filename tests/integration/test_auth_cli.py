"""``tidings keys`` and ``tidings tenants``, and ``--key``/``TIDINGS_KEY`` on client commands,
against a real server that requires keys."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.integration.server import ServerProcess
from tests.integration.test_cli import assert_clean_failure, tidings

ROOT = "tdk_" + "cli0" * 11


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = {
        "TIDINGS_AUTH": "on",
        "TIDINGS_BOOTSTRAP_KEY": ROOT,
        "TIDINGS_WEBHOOK_ALLOW_PRIVATE": "true",
    }
    server = ServerProcess(tmp_path_factory.mktemp("auth-cli") / "data", env=env).start()
    yield server
    server.stop()


def test_a_client_command_without_a_key_fails_with_a_hint(hub: ServerProcess) -> None:
    result = tidings("query", url=hub.url)
    assert_clean_failure(result)
    assert "unauthorized" in result.stderr
    assert "--key or set TIDINGS_KEY" in result.stderr


def test_tenants_and_keys_are_created_listed_and_revoked(hub: ServerProcess) -> None:
    root = {"TIDINGS_KEY": ROOT}
    made = tidings("tenants", "create", "cli-acme", "--name", "Acme", url=hub.url, env=root)
    assert made.returncode == 0, made.stderr
    listed = tidings("tenants", "list", "--json", url=hub.url, env=root)
    assert "cli-acme" in {t["id"] for t in json.loads(listed.stdout)}

    created = tidings(
        "keys", "create", "--name", "ci", "--scope", "publish", "--scope", "subscribe",
        "--tenant", "cli-acme", "--rate-limit", "100", url=hub.url, env=root,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("tdk_") and len(key) == 47
    assert "shown this once" in created.stderr

    published = tidings("publish", "cli.checked", "--data", '{"n": 1}', "--key", key, url=hub.url)
    assert published.returncode == 0, published.stderr
    queried = tidings("query", "--json", "--key", key, url=hub.url)
    assert queried.returncode == 0, queried.stderr
    assert "cli.checked" in queried.stdout

    keys = tidings("keys", "list", "--tenant", "cli-acme", "--json", url=hub.url, env=root)
    found = [k for k in json.loads(keys.stdout) if k["prefix"] == key[:12]]
    assert len(found) == 1 and "key" not in found[0]
    table = tidings("keys", "list", "--tenant", "cli-acme", url=hub.url, env=root)
    assert key[:12] in table.stdout and key not in table.stdout

    revoked = tidings("keys", "revoke", found[0]["id"], url=hub.url, env=root)
    assert revoked.returncode == 0, revoked.stderr
    refused = tidings("query", "--key", key, url=hub.url)
    assert_clean_failure(refused)
    assert "unauthorized" in refused.stderr


def test_unknown_scopes_are_named(hub: ServerProcess) -> None:
    result = tidings(
        "keys", "create", "--name", "x", "--scope", "write", url=hub.url, env={"TIDINGS_KEY": ROOT}
    )
    assert_clean_failure(result)
    assert "invalid_scopes" in result.stderr and "'write'" in result.stderr


def test_root_manages_another_tenants_webhooks_and_dead_letters(hub: ServerProcess) -> None:
    root = {"TIDINGS_KEY": ROOT}
    made = tidings("tenants", "create", "cli-blue", url=hub.url, env=root)
    assert made.returncode == 0, made.stderr
    added = tidings(
        "webhooks", "add", "http://127.0.0.1:9/hook", "--tenant", "cli-blue", "--json",
        url=hub.url, env=root,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    hook_id = json.loads(added.stdout)["id"]
    theirs = tidings("webhooks", "list", "--tenant", "cli-blue", "--json", url=hub.url, env=root)
    assert [w["id"] for w in json.loads(theirs.stdout)] == [hook_id]
    own = tidings("webhooks", "list", "--json", url=hub.url, env=root)
    assert hook_id not in {w["id"] for w in json.loads(own.stdout)}
    shown = tidings("webhooks", "show", hook_id, "--json", url=hub.url, env=root)
    assert shown.returncode == 0 and json.loads(shown.stdout)["id"] == hook_id
    letters = tidings("dlq", "list", "--tenant", "cli-blue", "--json", url=hub.url, env=root)
    assert letters.returncode == 0 and letters.stdout == ""
    redriven = tidings("dlq", "redrive", "--all", "--tenant", "cli-blue", url=hub.url, env=root)
    assert redriven.returncode == 0, redriven.stderr
    assert "redriven 0" in redriven.stderr
    deleted = tidings("webhooks", "delete", hook_id, url=hub.url, env=root)
    assert deleted.returncode == 0, deleted.stderr

    admin = tidings(
        "keys", "create", "--name", "ops", "--scope", "admin", url=hub.url, env=root
    ).stdout.strip()
    refused = tidings("webhooks", "list", "--tenant", "cli-blue", "--key", admin, url=hub.url)
    assert_clean_failure(refused)
    assert "forbidden" in refused.stderr
    unknown = tidings("webhooks", "list", "--tenant", "cli-none", url=hub.url, env=root)
    assert_clean_failure(unknown)
    assert "no tenant 'cli-none'" in unknown.stderr
