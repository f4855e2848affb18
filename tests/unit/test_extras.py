"""Without an optional extra the server still starts, and a feature that needs the extra is
refused at start in one line that names the install command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

# Runs first in the child: every optional package looks uninstalled.
BLOCK = """
import importlib.abc, sys
BLOCKED = ("paho", "asyncpg", "cryptography", "redis", "nats")
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}")
        return None
sys.meta_path.insert(0, Block())
"""


def run(code: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BLOCK + code, *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "TIDINGS_DATA_DIR": str(tmp_path / "data")},
    )


def test_the_server_and_the_cli_import_without_any_extra(tmp_path: Path) -> None:
    code = (
        "import tidings.server, tidings.cli.main, tidings.api.app, tidings.hub\n"
        "from tidings.ingest.config import load_ingest_config\n"
        "from tidings.settings import load_settings\n"
        "load_ingest_config(load_settings({}))\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in BLOCKED))\n"
    )
    done = run(code, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("config", "extra"),
    [
        ('[mqtt]\nurl = "mqtt://127.0.0.1:1883"\n', "mqtt"),
        ('[[pg_notify]]\ndsn = "postgresql://x@127.0.0.1/x"\nchannel = "c"\n', "postgres"),
        ('[sources.st]\nverifier = "smartthings"\nsecret = "s"\n', "smartthings"),
        ('store = "postgresql://x@127.0.0.1/x"\n', "postgres"),
        ('backplane = "redis://127.0.0.1:6379"\n', "redis"),
        ('backplane = "nats://127.0.0.1:4222"\n', "nats"),
    ],
)
def test_a_feature_without_its_extra_fails_at_start_naming_the_install(
    tmp_path: Path, config: str, extra: str
) -> None:
    (tmp_path / "tidings.toml").write_text(config)
    code = "from tidings.cli import main\nsys.argv = ['tidings', *sys.argv[1:]]\nmain()\n"
    done = run(code, tmp_path, "serve", "--config", "tidings.toml", "--port", "0")
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert f"needs the {extra} extra: pip install 'tidings[{extra}]'" in lines[0]
