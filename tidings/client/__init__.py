"""The Python client of a Tidings server, synchronous (:class:`Client`) and asynchronous
(:class:`AsyncClient`), with the same methods and typed results.

    from tidings.client import Client

    with Client("http://127.0.0.1:8000") as tidings:
        tidings.publish("door.opened", {"door": "front"})
        for event in tidings.query(type="door.*"):
            print(event.seq, event.type, event.data)

It depends on httpx2 and orjson only: importing it never loads the server.
"""

from __future__ import annotations

from tidings.client._async import AsyncClient
from tidings.client._calls import event_body
from tidings.client._errors import TidingsError
from tidings.client._models import (
    Attempt,
    DeadLetter,
    Delivery,
    Event,
    Key,
    Page,
    Published,
    Redriven,
    SystemMessage,
    Tenant,
    Webhook,
)
from tidings.client._reading import StreamItem
from tidings.client._sync import Client

__all__ = [
    "AsyncClient",
    "Attempt",
    "Client",
    "DeadLetter",
    "Delivery",
    "Event",
    "Key",
    "Page",
    "Published",
    "Redriven",
    "StreamItem",
    "SystemMessage",
    "Tenant",
    "TidingsError",
    "Webhook",
    "event_body",
]
