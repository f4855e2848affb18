"""``tidings serve`` on asyncio's own event loop instead of uvloop: a diagnostic for the fan-out
benchmark (``--servers tidings,tidings-asyncio,nchan``), to see what uvloop changes.

uvicorn picks uvloop whenever it is installed (``loop="auto"``); this starts the same command
with every ``uvicorn.Config`` made with ``loop="asyncio"``.
"""

from __future__ import annotations

import sys
from typing import Any

import uvicorn

_config_init = uvicorn.Config.__init__


def _asyncio_config(self: uvicorn.Config, *args: Any, **kwargs: Any) -> None:
    kwargs["loop"] = "asyncio"
    _config_init(self, *args, **kwargs)


uvicorn.Config.__init__ = _asyncio_config  # type: ignore[method-assign]

if __name__ == "__main__":
    from tidings.cli import main

    sys.argv[0] = "tidings"
    main()
