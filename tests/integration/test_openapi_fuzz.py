"""schemathesis over /openapi.json against a real server: every request the document allows is
accepted, every request it rules out is refused, every answer (status, headers, body) is one the
document describes, and nothing answers 5xx. Examples per operation are bounded and the seed is
fixed, so the run is short and the same every time."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.server import ServerProcess

ROOT = Path(__file__).parents[2]
# Routes that never end (streams), or answer in their own format (Prometheus text).
EXCLUDED = r"^/v1/events/stream$|^/v1/ws$|^/metrics$"
EXAMPLES = 25
SEED = 20261205


@pytest.mark.slow
def test_the_server_does_what_its_openapi_document_says(tmp_path: Path) -> None:
    env = {"TIDINGS_WEBHOOK_ALLOW_PRIVATE": "true"}
    server = ServerProcess(tmp_path / "data", env=env).start()
    try:
        done = subprocess.run(
            [
                Path(sys.executable).parent / "schemathesis",
                "run",
                f"{server.url}/openapi.json",
                "--checks",
                "all",
                "--max-examples",
                str(EXAMPLES),
                "--seed",
                str(SEED),
                "--exclude-path-regex",
                EXCLUDED,
                "--request-timeout",
                "15",
                "--no-color",
            ],
            cwd=ROOT,
            env={**os.environ, "SCHEMATHESIS_HOOKS": "tests.integration.schemathesis_hooks"},
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        server.stop()
    failures = done.stdout[done.stdout.find("= FAILURES =") :]
    assert done.returncode == 0, failures[:12000] + done.stderr[-2000:]
