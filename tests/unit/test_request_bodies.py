"""Validating a parsed JSON body against a model: what a client is told (no I/O)."""

from __future__ import annotations

from typing import Annotated

import pytest
from pydantic import AfterValidator, BaseModel, ConfigDict

from tidings.api.body import validated
from tidings.errors import TidingsError


def _positive(value: int) -> int:
    if value <= 0:
        raise ValueError("must be positive")
    return value


class Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    size: Annotated[int, AfterValidator(_positive)] = 1


def test_a_valid_object_becomes_the_model() -> None:
    assert validated({"name": "a", "size": 2}, Spec) == Spec(name="a", size=2)


def test_a_body_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(TidingsError) as raised:
        validated([1, 2], Spec)
    assert raised.value.status == 422
    assert raised.value.details == [{"loc": ["body"], "msg": "expected an object"}]


def test_each_problem_is_located_in_the_body_with_its_own_sentence() -> None:
    with pytest.raises(TidingsError) as raised:
        validated({"size": 0, "extra": 1}, Spec)
    assert raised.value.status == 422
    assert raised.value.details == [
        {"loc": ["body", "name"], "msg": "Field required"},
        {"loc": ["body", "size"], "msg": "must be positive"},
        {"loc": ["body", "extra"], "msg": "Extra inputs are not permitted"},
    ]
