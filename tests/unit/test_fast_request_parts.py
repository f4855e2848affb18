"""The publish path's own header lookup and 201 answer match Starlette's."""

from __future__ import annotations

import orjson
import pytest
from starlette.datastructures import Headers

from tidings.api.fast_paths import IndexedHeaders
from tidings.api.responses import created_response, json_response

RAW = [
    (b"content-type", b"application/json"),
    (b"x-twice", b"first"),
    (b"x-twice", b"second"),
    (b"x-latin", "é".encode("latin-1")),
    (b"x-empty", b""),
]


@pytest.mark.parametrize(
    "name", ["content-type", "Content-Type", "X-TWICE", "x-latin", "x-empty", "missing"]
)
def test_lookups_answer_as_starlette_headers(name: str) -> None:
    ours, theirs = IndexedHeaders({"headers": list(RAW)}), Headers(raw=list(RAW))
    assert ours.get(name) == theirs.get(name)
    assert ours.get(name, "default") == theirs.get(name, "default")
    assert (name in ours) == (name in theirs)
    if name in theirs:
        assert ours[name] == theirs[name]
    else:
        with pytest.raises(KeyError):
            ours[name]


def test_everything_else_is_starlette_headers() -> None:
    ours = IndexedHeaders({"headers": list(RAW)})
    assert ours.getlist("x-twice") == ["first", "second"]
    assert ours.raw == RAW and len(ours) == len(RAW)
    assert ours == Headers(raw=list(RAW))


def test_the_created_answer_is_json_response_with_a_location() -> None:
    content = {"id": "x", "seq": 1, "duplicate": False}
    ours = created_response(orjson.dumps(content), "/v1/events/x")
    theirs = json_response(content, 201, headers={"Location": "/v1/events/x"})
    assert ours.status_code == theirs.status_code == 201
    assert ours.body == theirs.body
    assert ours.raw_headers == theirs.raw_headers
    assert ours.background is None and ours.media_type == theirs.media_type
