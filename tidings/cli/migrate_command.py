"""``tidings migrate-store``: copy everything a store holds into another one."""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn

err = Console(stderr=True)


def register(app: typer.Typer) -> None:
    @app.command("migrate-store")
    def migrate_store(
        source: str = typer.Option(
            ..., "--from", help="Store URL to copy from: sqlite:///path or postgresql://..."
        ),
        target: str = typer.Option(..., "--to", help="Store URL to copy into."),
        resume: bool = typer.Option(
            False,
            "--resume",
            help="Continue into a target that is not empty (an interrupted or earlier copy).",
        ),
        batch: int = typer.Option(5000, "--batch", min=1, help="Rows per transaction."),
    ) -> None:
        """Copy events (same ids, positions and times), webhook endpoints with their secrets,
        delivery state, sink cursors and dead letters from one store to another.

        Stop the servers using the source first. A target that holds anything is refused
        unless --resume is given; an interrupted copy continues where it stopped.

        Examples:

          tidings migrate-store --from sqlite:///data/tidings.db --to postgresql://db/tidings

          tidings migrate-store --from sqlite:///t.db --to postgresql://db/tidings --resume
        """
        from tidings.store.backend import redact
        from tidings.store.errors import StoreOpenError

        if source == target:
            err.print("[red]error:[/red] --from and --to name the same store", highlight=False)
            raise typer.Exit(2)
        try:
            counts = asyncio.run(_copy(source, target, resume, batch))
        except (ValueError, StoreOpenError) as error:  # a bad URL, a store that cannot open...
            err.print(f"[red]error:[/red] {error}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        summary = ", ".join(f"{n} {part.replace('_', ' ')}" for part, n in counts.items())
        typer.echo(f"copied {redact(source)} to {redact(target)}: {summary}")


async def _copy(source_url: str, target_url: str, resume: bool, batch: int) -> dict[str, int]:
    from tidings.store import open_backend
    from tidings.store.copy import copy_backend

    here = Path.cwd()
    source, target = open_backend(source_url, here), open_backend(target_url, here)
    await source.open()
    try:
        await target.open()
        try:
            with Progress(
                TextColumn("{task.description:>12}"),
                BarColumn(),
                MofNCompleteColumn(),
                console=err,
                transient=False,
            ) as bar:
                tasks: dict[str, TaskID] = {}

                def tell(part: str, done: int, total: int | None) -> None:
                    if part not in tasks:
                        tasks[part] = bar.add_task(part, total=total)
                    bar.update(tasks[part], completed=done, total=total)

                report = await copy_backend(
                    source, target, resume=resume, batch=batch, progress=tell
                )
        finally:
            await target.close()
    finally:
        await source.close()
    return report.counts
