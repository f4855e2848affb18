"""The asynchronous client: sends the calls of ``_calls`` with ``httpx2.AsyncClient``."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Coroutine, Mapping
from types import TracebackType
from typing import Concatenate, ParamSpec, TypeVar

import httpx2

from tidings.client import _calls, _reading
from tidings.client._calls import Answer, Call, Op, Pager
from tidings.client._connection import Connection, connection_was_refused, failure
from tidings.client._errors import TidingsError
from tidings.client._models import Event, Page
from tidings.client._policy import Backoff, RetryPolicy
from tidings.client._reading import (
    ExportReader,
    StreamItem,
    StreamResume,
    event_stream_type,
    ndjson_export,
)

P = ParamSpec("P")
T = TypeVar("T")


def _op(
    build: Callable[P, Op[T]],
) -> Callable[Concatenate[AsyncClient, P], Coroutine[None, None, T]]:
    @functools.wraps(build)
    async def method(self: AsyncClient, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return await self.run(build(*args, **kwargs))

    return method


def _lines(build: Callable[P, Call]) -> Callable[Concatenate[AsyncClient, P], AsyncIterator[str]]:
    @functools.wraps(build)
    def method(self: AsyncClient, /, *args: P.args, **kwargs: P.kwargs) -> AsyncIterator[str]:
        return self.lines(build(*args, **kwargs))

    method.__doc__ = f"The export's lines as the server writes them. {build.__doc__ or ''}"
    return method


def _chunks(
    build: Callable[P, Call],
) -> Callable[Concatenate[AsyncClient, P], AsyncIterator[bytes]]:
    @functools.wraps(build)
    def method(self: AsyncClient, /, *args: P.args, **kwargs: P.kwargs) -> AsyncIterator[bytes]:
        return self.chunks(build(*args, **kwargs))

    method.__doc__ = f"The export's bytes exactly as the server sends them. {build.__doc__ or ''}"
    return method


def _exported(
    build: Callable[P, Call],
) -> Callable[Concatenate[AsyncClient, P], AsyncIterator[Event]]:
    @functools.wraps(build)
    async def method(
        self: AsyncClient, /, *args: P.args, **kwargs: P.kwargs
    ) -> AsyncIterator[Event]:
        reader = ExportReader(self.url)
        async for line in self.lines(ndjson_export(build(*args, **kwargs))):
            event = reader.line(line)
            if event is not None:
                yield event

    method.__doc__ = f"The exported events, read as they arrive. {build.__doc__ or ''}"
    return method


def _streamed(
    build: Callable[P, StreamResume],
) -> Callable[Concatenate[AsyncClient, P], AsyncGenerator[StreamItem, None]]:
    @functools.wraps(build)
    def method(
        self: AsyncClient, /, *args: P.args, **kwargs: P.kwargs
    ) -> AsyncGenerator[StreamItem, None]:
        return self.follow(build(*args, **kwargs))

    method.__doc__ = f"Yields each Event and SystemMessage. {build.__doc__ or ''}"
    return method


def _subscribed(
    build: Callable[P, StreamResume],
) -> Callable[Concatenate[AsyncClient, P], AsyncIterator[Event]]:
    @functools.wraps(build)
    async def method(
        self: AsyncClient, /, *args: P.args, **kwargs: P.kwargs
    ) -> AsyncIterator[Event]:
        items = self.follow(build(*args, **kwargs))
        try:
            async for item in items:
                if isinstance(item, Event):
                    yield item
        finally:
            await items.aclose()

    method.__doc__ = f"Yields events only. {build.__doc__ or ''}"
    return method


def _page(
    build: Callable[P, Pager[T]],
) -> Callable[Concatenate[AsyncClient, P], Coroutine[None, None, Page[T]]]:
    @functools.wraps(build)
    async def method(self: AsyncClient, /, *args: P.args, **kwargs: P.kwargs) -> Page[T]:
        pager = build(*args, **kwargs)
        return pager.read(await self.send(pager.call))

    method.__doc__ = f"One page: {build.__doc__ or ''}"
    return method


def _items(build: Callable[P, Pager[T]]) -> Callable[Concatenate[AsyncClient, P], AsyncIterator[T]]:
    @functools.wraps(build)
    def method(self: AsyncClient, /, *args: P.args, **kwargs: P.kwargs) -> AsyncIterator[T]:
        return self.iterate(build(*args, **kwargs))

    method.__doc__ = f"Every item, page after page: {build.__doc__ or ''}"
    return method


class AsyncClient:
    """A Tidings server, used from asyncio.

    ``url`` defaults to ``TIDINGS_URL`` (else ``http://127.0.0.1:8000``) and ``key`` to
    ``TIDINGS_KEY``. Every method raises :class:`TidingsError` when the request fails. Safe
    calls (GETs; publishes with idempotency keys) are sent again up to ``retries`` times when
    no answer came or the server asked to wait (429/502/503/504).
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        key: str | None = None,
        timeout: float = 30.0,
        retries: int = 2,
        stream_read_timeout: float = 60.0,
        headers: Mapping[str, str] | None = None,
        transport: httpx2.AsyncBaseTransport | None = None,
    ) -> None:
        self.connection = Connection.resolve(url, key, timeout, stream_read_timeout, headers)
        self.policy = RetryPolicy(retries=retries)  # which calls are sent again, and when
        try:
            self._http = httpx2.AsyncClient(
                base_url=self.connection.url,
                headers=self.connection.headers,
                timeout=self.connection.timeout,
                transport=transport,
                follow_redirects=False,
            )
        except (httpx2.InvalidURL, httpx2.UnsupportedProtocol) as error:
            raise failure(error, self.connection.url) from None

    @property
    def url(self) -> str:
        return self.connection.url

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- the transport ----------------------------------------------------------------------

    async def send(self, call: Call) -> Answer:
        """Send ``call`` (again, while the retry policy allows) and return the answer."""
        backoff, tries = Backoff(), 0
        while True:
            tries += 1
            try:
                response = await self._http.request(
                    call.method,
                    call.path,
                    params=call.params,
                    content=call.body,
                    headers=call.headers,
                )
            except httpx2.TransportError as error:
                sent = not connection_was_refused(error)
                wait = self.policy.after_failure(call, tries, sent, backoff)
                if wait is None:
                    raise failure(error, self.url) from None
            except (httpx2.HTTPError, httpx2.InvalidURL) as error:
                raise failure(error, self.url) from None
            else:
                answer = Answer(
                    response.status_code, response.headers, response.content, str(response.url)
                )
                wait = self.policy.after_answer(call, tries, answer, backoff)
                if wait is None:
                    return answer
            await asyncio.sleep(wait)

    async def run(self, op: Op[T]) -> T:
        """Send an operation's call and read its answer."""
        return op.read(await self.send(op.call))

    async def iterate(self, pager: Pager[T]) -> AsyncIterator[T]:
        """Every item of every page, fetching the next page only when it is needed."""
        call: Call | None = pager.call
        while call is not None:
            page = pager.read(await self.send(call))
            for item in page.items:
                yield item
            call = pager.after(page.next) if page.next else None

    # -- events -----------------------------------------------------------------------------

    publish = _op(_calls.publish)
    publish_batch = _op(_calls.publish_batch)
    get_event = _op(_calls.get_event)
    query = _items(_calls.query)
    query_page = _page(_calls.query)
    stats = _op(_calls.stats)
    ready = _op(_calls.ready)

    export_lines = _lines(_calls.export)
    export_bytes = _chunks(_calls.export)
    export = _exported(_calls.export)
    stream = _streamed(_reading.stream)
    subscribe = _subscribed(_reading.stream)

    async def lines(self, call: Call) -> AsyncIterator[str]:
        """The lines of a streamed answer (an export), as the server writes them."""
        try:
            async with self._http.stream(
                call.method, call.path, params=call.params, timeout=self.connection.stream_timeout
            ) as response:
                if response.status_code != 200:
                    await response.aread()
                    _calls.check(_answer(response))
                    raise _calls.not_tidings(_answer(response))
                async for line in response.aiter_lines():
                    yield line
        except httpx2.HTTPError as error:
            raise failure(error, self.url) from None

    async def chunks(self, call: Call) -> AsyncGenerator[bytes, None]:
        """The body of a streamed answer (an export) in pieces as they arrive, byte for byte;
        an export cut short by the server ends with its error line."""
        try:
            async with self._http.stream(
                call.method, call.path, params=call.params, timeout=self.connection.stream_timeout
            ) as response:
                if response.status_code != 200:
                    await response.aread()
                    answer = Answer(
                        response.status_code, response.headers, response.content, str(response.url)
                    )
                    _calls.check(answer)
                    raise _calls.not_tidings(answer)
                async for chunk in response.aiter_bytes():
                    yield chunk
        except httpx2.HTTPError as error:
            raise failure(error, self.url) from None

    async def follow(self, resume: StreamResume) -> AsyncGenerator[StreamItem, None]:
        """Connect, read, and reconnect from ``resume``'s position until the caller stops."""
        while True:
            call = resume.request()
            try:
                async with self._http.stream(
                    call.method,
                    call.path,
                    params=call.params,
                    headers=(("Accept", "text/event-stream"), *call.headers),
                    timeout=self.connection.stream_timeout,
                ) as response:
                    if response.status_code != 200:
                        await response.aread()
                        wait = resume.refused(_answer(response))
                    elif not event_stream_type(response.headers.get("content-type", "")):
                        await response.aread()
                        raise _calls.not_tidings(_answer(response))
                    else:
                        async for sse in httpx2.EventSource(response):
                            item = resume.frame(sse.event, sse.data, sse.id, sse.retry)
                            if item is not None:
                                yield item
                        wait = resume.ended()
            except httpx2.TransportError as error:
                wait = resume.ended(failure(error, self.url))
            except (httpx2.HTTPError, httpx2.InvalidURL) as error:
                raise failure(error, self.url) from None
            await asyncio.sleep(wait)

    # -- webhooks and deliveries ------------------------------------------------------------

    create_webhook = _op(_calls.create_webhook)
    list_webhooks = _op(_calls.list_webhooks)
    get_webhook = _op(_calls.get_webhook)
    update_webhook = _op(_calls.update_webhook)
    delete_webhook = _op(_calls.delete_webhook)
    rotate_secret = _op(_calls.rotate_secret)
    replay = _op(_calls.replay)
    deliveries = _items(_calls.deliveries)
    deliveries_page = _page(_calls.deliveries)
    get_delivery = _op(_calls.get_delivery)
    retry_delivery = _op(_calls.retry_delivery)

    # -- dead letters -----------------------------------------------------------------------

    dead_letters = _items(_calls.dead_letters)
    dead_letters_page = _page(_calls.dead_letters)
    get_dead_letter = _op(_calls.get_dead_letter)
    delete_dead_letter = _op(_calls.delete_dead_letter)
    redrive_dead_letter = _op(_calls.redrive_dead_letter)
    redrive_dead_letters = _op(_calls.redrive_dead_letters)

    # -- keys and tenants -------------------------------------------------------------------

    create_key = _op(_calls.create_key)
    list_keys = _op(_calls.list_keys)
    get_key = _op(_calls.get_key)
    revoke_key = _op(_calls.revoke_key)
    create_tenant = _op(_calls.create_tenant)
    list_tenants = _op(_calls.list_tenants)


def _answer(response: httpx2.Response) -> Answer:
    return Answer(response.status_code, response.headers, response.content, str(response.url))


__all__ = ["AsyncClient", "TidingsError"]
