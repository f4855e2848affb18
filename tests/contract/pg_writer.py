"""A writer process for the commit-order test: appends events from many tasks at once and
prints the positions it was answered with (JSON), once every append has returned."""

from __future__ import annotations

import asyncio
import sys

import orjson

from tidings.envelope import Limits, PublishContext, candidates_from_json
from tidings.store.postgres import PostgresStore


async def main(url: str, events: int, tasks: int, name: str) -> None:
    store = PostgresStore(url, pool_size=4)
    await store.open()
    acknowledged: list[int] = []

    async def publish(task: int) -> None:
        for n in range(task, events, tasks):
            body = {"type": "order.checked", "source": name, "data": {"n": n}}
            if n % 7 == 0:  # some batches, so groups mix callers of several sizes
                body = [body, {**body, "subject": "second"}]  # type: ignore[assignment]
            candidates, _ = candidates_from_json(body, PublishContext(), Limits())
            results = await store.append(candidates)
            acknowledged.extend(r.seq for r in results)

    await asyncio.gather(*(publish(t) for t in range(tasks)))
    await store.close()
    sys.stdout.write(orjson.dumps(acknowledged).decode())


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]))
