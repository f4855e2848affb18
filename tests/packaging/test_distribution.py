"""The wheel and the sdist, built as a release would be, install in a fresh virtual environment
with the core dependencies only, and the installed server and client work."""

from __future__ import annotations

import subprocess
import sys
import tarfile
import time
import venv
from pathlib import Path

import pytest

from tests.integration.server import free_port
from tidings import __version__

ROOT = Path(__file__).parents[2]
pytestmark = pytest.mark.slow

SMOKE = """
import sys
from tidings.client import Client
with Client(sys.argv[1]) as tidings:
    stored = tidings.publish("door.opened", {"door": "front"}, idempotency_key="smoke-1")
    assert [e.seq for e in tidings.query(type="door.*")] == [stored.seq]
    assert list(tidings.export())[0].data == {"door": "front"}
print("ok")
"""


def run(*args: str | Path, timeout: float = 300) -> str:
    done = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    run(sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", out)
    return out


def test_the_sdist_holds_the_sources_the_data_files_and_the_changelog(dist: Path) -> None:
    (sdist,) = dist.glob("tidings-*.tar.gz")
    assert sdist.name == f"tidings-{__version__}.tar.gz"
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    for expected in ("tidings/client/__init__.py", "tidings/py.typed", "CHANGELOG.md", "README.md"):
        assert expected in names
    assert any(n.startswith("tidings/store/sqlite/migrations/") for n in names)
    assert any(n.startswith("tidings/web/static/") for n in names)


def test_the_wheel_installs_with_the_core_dependencies_and_serves(
    dist: Path, tmp_path: Path
) -> None:
    (wheel,) = dist.glob("tidings-*.whl")
    venv.create(tmp_path / "env", with_pip=True)
    python = tmp_path / "env" / "bin" / "python"
    run(python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", wheel)
    installed = run(python, "-m", "pip", "list", "--format=freeze").lower()
    for optional in ("asyncpg", "paho-mqtt", "cryptography", "redis", "nats-py"):
        assert f"{optional}==" not in installed
    assert (
        run(tmp_path / "env" / "bin" / "tidings", "--version").strip() == f"tidings {__version__}"
    )

    port, log = free_port(), tmp_path / "server.log"
    with log.open("wb") as output:
        server = subprocess.Popen(
            [tmp_path / "env" / "bin" / "tidings", "serve", "--port", str(port)],
            cwd=tmp_path,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready = (
            "import httpx2,sys; sys.exit(httpx2.get(sys.argv[1]+'/readyz').status_code!=200)"
        )
        deadline = time.monotonic() + 30
        while subprocess.run([python, "-c", wait_ready, url], capture_output=True).returncode:
            assert server.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the installed server did not become ready"
            time.sleep(0.2)
        assert run(python, "-c", SMOKE, url).strip() == "ok"
    finally:
        server.terminate()
        server.wait(30)
