"""`embedbox models` (the catalog and registered models), `models register|unregister`.

The registry lives in the data dir ($EMBEDBOX_DATA_DIR or the default), where every process
that resolves a model name looks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table
from rich.text import Text

from embedbox import catalog
from embedbox.cli.common import JsonOpt, app, console, err_console, print_json
from embedbox.errors import ModelNotFound

models_app = typer.Typer(
    help="Known models, whether they are on this machine, and names for local folders.",
    invoke_without_command=True,
)
app.add_typer(models_app, name="models")


@models_app.callback()
def models(ctx: typer.Context, as_json: bool = JsonOpt) -> None:
    """Known models and whether their weights are on this machine."""
    if ctx.invoked_subcommand is not None:
        return
    rows = [_catalog_row(spec) for spec in catalog.CATALOG] + _registered_rows()
    if as_json:
        print_json(rows)
        return
    table = Table(title="embedbox models")
    table.add_column("name", no_wrap=True)
    table.add_column("kind", no_wrap=True)
    table.add_column("dim", justify="right", no_wrap=True)
    table.add_column("max tokens", justify="right")
    table.add_column("here", no_wrap=True)
    table.add_column("where / how to get", overflow="fold")
    for r in rows:
        table.add_row(
            r["name"],
            r["kind"],
            "-" if r["dim"] is None else str(r["dim"]),
            "-" if r["max_tokens"] is None else str(r["max_tokens"]),
            Text("yes", style="green") if r["available"] else Text("no", style="dim"),
            Text(r["path"] or r["source"]),
        )
    console.print(table)


def _catalog_row(spec: catalog.ModelSpec) -> dict[str, Any]:
    from embedbox.models import locate

    try:
        path = locate(spec)  # assembles a model split across packages on first use
    except ModelNotFound as exc:
        path = None
        err_console.print(f"[yellow]warning:[/yellow] {exc}", highlight=False)
    return {
        "name": spec.name,
        "kind": spec.kind,
        "dim": spec.dim,
        # Word and image models take no token sequence: no limit applies.
        "max_tokens": spec.max_tokens if spec.kind in ("text", "text-image") else None,
        "pooling": spec.pooling,
        "prompts": spec.prompts,
        "tasks": list(spec.tasks),
        "available": path is not None,
        "path": str(path) if path else None,
        "source": spec.where(),
        "description": spec.description,
    }


def _registered_rows() -> list[dict[str, Any]]:
    from embedbox.errors import EmbedboxError
    from embedbox.models.registry import registered
    from embedbox.models.text import read_model_info

    rows = []
    for name, entry in sorted(registered().items()):
        path = Path(entry["path"])
        row: dict[str, Any] = {
            "name": name,
            "kind": "text",
            "dim": None,
            "max_tokens": None,
            "pooling": None,
            "prompts": {},
            "tasks": [],
            "available": False,
            "path": str(path),
            "source": "registered",
            "description": f"registered local folder {path}",
        }
        try:
            info = read_model_info(path)
        except EmbedboxError:
            rows.append(row)  # listed, so it can be seen and fixed
            continue
        row.update(
            dim=info.dim,
            max_tokens=info.max_tokens,
            pooling=info.pooling,
            prompts=info.prompts,
            tasks=list(info.tasks),
            available=True,
        )
        rows.append(row)
    return rows


@models_app.command("register")
def register(
    name: str = typer.Argument(..., help="Name to give the model."),
    folder: Path = typer.Argument(..., help="The model folder (e.g. written by `embedbox train`)."),
    force: bool = typer.Option(False, "--force", help="Point an existing name at this folder."),
    as_json: bool = JsonOpt,
) -> None:
    """Give a local model folder a name usable everywhere a model is asked for."""
    from embedbox.models.registry import register as add

    path = add(name, folder, force=force)
    if as_json:
        print_json({"name": name, "path": str(path)})
    else:
        console.print(f"registered {name!r} -> {path}")


@models_app.command("unregister")
def unregister(
    name: str = typer.Argument(..., help="A registered name."),
) -> None:
    """Forget a registered name (the folder is left alone)."""
    from embedbox.models.registry import unregister as remove

    remove(name)
    console.print(f"unregistered {name!r}")
