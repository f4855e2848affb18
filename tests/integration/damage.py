"""Damage a SQLite file on purpose, the way a bad disk or a stray write would."""

from __future__ import annotations

from pathlib import Path


def page_size(path: Path) -> int:
    with path.open("rb") as file:
        header = file.read(100)
    size = int.from_bytes(header[16:18], "big")
    return 65_536 if size == 1 else size


def damage_page_holding(path: Path, marker: bytes) -> int:
    """Overwrite the b-tree header of the page that holds ``marker``; its page number.

    Run on a closed, checkpointed store (everything in the main file). SQLite then reports
    the page as malformed to whatever reads it, and ``PRAGMA quick_check`` finds it.
    """
    content = bytearray(path.read_bytes())
    offset = content.find(marker)
    assert offset > 0, f"{marker!r} is not in {path}"
    size = page_size(path)
    start = offset - offset % size
    content[start : start + 12] = b"\xff" * 12
    path.write_bytes(bytes(content))
    return start // size + 1
