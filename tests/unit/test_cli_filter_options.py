"""The filter options every reading command shares: what a command receives and lists."""

from __future__ import annotations

from typing import Annotated

import typer
from typer.testing import CliRunner

from tidings.cli.filters import EventFilter, filter_options


def _app(*, history: bool, seen: list[EventFilter]) -> typer.Typer:
    app = typer.Typer()

    @app.command()
    @filter_options(history=history)
    def read(
        filters: EventFilter,
        limit: Annotated[int, typer.Option("--limit", help="How many.")] = 5,
    ) -> None:
        seen.append(filters)
        typer.echo(f"limit={limit}")

    return app


def test_the_options_given_reach_the_command_as_one_filter_beside_its_own_options() -> None:
    seen: list[EventFilter] = []
    result = CliRunner().invoke(
        _app(history=True, seen=seen),
        ["-t", "a.*", "--type", "b.#", "--where", "data.x=1", "--after", "7", "--limit", "2"],
    )
    assert result.exit_code == 0, result.output
    assert result.output == "limit=2\n"
    assert seen == [EventFilter(types=["a.*", "b.#"], where=["data.x=1"], after=7)]
    assert seen[0].params() == [
        ("type", "a.*"),
        ("type", "b.#"),
        ("data.x", "1"),
        ("after", "7"),
    ]


def test_no_options_is_an_empty_filter() -> None:
    seen: list[EventFilter] = []
    result = CliRunner().invoke(_app(history=True, seen=seen), [])
    assert result.exit_code == 0, result.output
    assert seen == [EventFilter()]
    assert seen[0].params() == []


def test_a_live_command_has_no_range_options() -> None:
    seen: list[EventFilter] = []
    result = CliRunner().invoke(_app(history=False, seen=seen), ["--until", "5m"])
    assert result.exit_code == 2
    assert "--until" in result.output
    assert seen == []


def test_help_lists_the_filter_options_before_the_commands_own() -> None:
    result = CliRunner().invoke(_app(history=True, seen=[]), ["--help"])
    assert result.exit_code == 0
    text = result.output
    order = ["--type", "--source", "--exclude-source", "--subject", "--trace-id", "--where"]
    order += ["--since", "--until", "--after", "--before", "--limit"]
    positions = [text.index(option) for option in order]
    assert positions == sorted(positions)
