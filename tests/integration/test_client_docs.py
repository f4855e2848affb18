"""Every Python example of docs/client.md runs against a real server without an error."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.server import ServerProcess

DOC = Path(__file__).parents[2] / "docs" / "client.md"
EXAMPLES = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.DOTALL)


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = {"TIDINGS_WEBHOOK_ALLOW_PRIVATE": "true"}
    server = ServerProcess(tmp_path_factory.mktemp("client-docs") / "data", env=env).start()
    yield server
    server.stop()


def test_the_doc_has_examples() -> None:
    assert len(EXAMPLES) >= 6


@pytest.mark.parametrize("code", EXAMPLES, ids=[f"example{n}" for n in range(len(EXAMPLES))])
def test_each_example_runs(hub: ServerProcess, code: str, tmp_path: Path) -> None:
    env = {**os.environ, "TIDINGS_URL": hub.url}
    done = subprocess.run(  # in a directory of its own: an example may write a file
        [sys.executable, "-c", code],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
