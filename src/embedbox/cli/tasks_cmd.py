"""`embedbox recommend`, `embedbox cluster`, `embedbox dedup`, `embedbox map`.

INPUT is a file (txt, jsonl, csv, parquet: texts are embedded; .npy: vectors as they are) or
the name / folder of a collection.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.table import Table
from rich.text import Text

from embedbox.cli.common import (
    ComputeOpt,
    DataDirOpt,
    JsonOpt,
    ModelOpt,
    WhereOpt,
    add_id_column,
    app,
    cell,
    console,
    parse_where,
    print_json,
    progress_bar,
)
from embedbox.cli.inputs import IdFieldOpt, TextFieldOpt, load_input
from embedbox.errors import InputError


# ---- recommend --------------------------------------------------------------------------------
@app.command()
def recommend(
    collection: str = typer.Argument(..., help="Collection name or folder."),
    like: list[str] = typer.Option([], "--like", help="Id of a liked item (repeatable)."),
    unlike: list[str] = typer.Option([], "--unlike", help="Id of a disliked item (repeatable)."),
    history: list[str] = typer.Option(
        [], "--history", help="Id from the user's history, oldest first (repeatable)."
    ),
    exclude: list[str] = typer.Option(
        [], "--exclude", help="Already-seen id to leave out (repeatable)."
    ),
    k: int = typer.Option(10, "-k", "--k", help="How many recommendations."),
    where: str | None = WhereOpt,
    diversity: float | None = typer.Option(
        None, "--diversity", help="MMR lambda 0..1 (1 = relevance only)."
    ),
    half_life: float | None = typer.Option(
        None, "--half-life", help="History weight halves every N items back."
    ),
    data_dir: Path | None = DataDirOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Recommend items similar to liked ones (and unlike disliked ones)."""
    from embedbox.store.collection import Collection
    from embedbox.tasks.recommend import RecommendOptions
    from embedbox.tasks.recommend import recommend as run

    col = Collection.open(collection, data_dir=data_dir)
    opts = RecommendOptions(k=k, diversity=diversity, half_life=half_life)
    recs = run(
        col, like, unlike, history=history, exclude=exclude, where=parse_where(where), options=opts
    )
    if as_json:
        print_json(
            {
                "collection": col.name,
                "like": like,
                "unlike": unlike,
                "results": [r.to_dict() for r in recs],
            }
        )
        return
    table = Table(title=f"recommended from {col.name!r}")
    table.add_column("#", justify="right", no_wrap=True)
    add_id_column(table, [r.id for r in recs])
    table.add_column("score", justify="right", no_wrap=True)
    table.add_column("text", min_width=12)
    for n, r in enumerate(recs, 1):
        table.add_row(str(n), Text(r.id), f"{r.score:.3f}", cell(r.text))
    console.print(table)


# ---- cluster ----------------------------------------------------------------------------------
@app.command()
def cluster(
    input: str = typer.Argument(..., help="File (txt/jsonl/csv/parquet/npy) or collection."),
    method: str = typer.Option(
        "kmeans", "--method", help="kmeans | hdbscan | agglomerative | community."
    ),
    k: int | None = typer.Option(
        None,
        "--k",
        help="Number of clusters (kmeans/agglomerative); default: chosen by silhouette.",
    ),
    k_max: int = typer.Option(12, "--k-max", help="Largest k tried when choosing k."),
    min_size: int = typer.Option(5, "--min-size", help="Smallest cluster (hdbscan / community)."),
    threshold: float = typer.Option(
        0.75, "--threshold", help="community: cosine similarity to link items."
    ),
    distance: float = typer.Option(
        0.6, "--distance-threshold", help="agglomerative: cosine distance to stop merging."
    ),
    write_field: str | None = typer.Option(
        None, "--write-field", help="Collection: store labels in this metadata key."
    ),
    text_field: str = TextFieldOpt,
    id_field: str = IdFieldOpt,
    where: str | None = WhereOpt,
    model: str = ModelOpt,
    compute: str = ComputeOpt,
    data_dir: Path | None = DataDirOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Group similar items and describe each group (size, representatives, keywords)."""
    from embedbox.tasks.cluster import METHODS, ClusterOptions
    from embedbox.tasks.cluster import cluster as run

    if method not in METHODS:
        raise InputError(f"unknown --method {method!r}; use {', '.join(METHODS)}")
    if write_field and Path(input).is_file():
        raise InputError(
            "--write-field needs a collection; for a file use --json and save the output"
        )
    data = load_input(input, text_field, id_field, model, compute, data_dir, where)
    opts = ClusterOptions(
        method=method,  # type: ignore[arg-type]
        k=k,
        k_range=(2, k_max),
        min_cluster_size=min_size,
        threshold=threshold,
        distance_threshold=distance,
    )
    result = run(data.vectors, data.texts, opts)
    if write_field:
        if data.collection is None:
            raise InputError("--write-field writes into a collection; INPUT here is a file")
        items = data.collection.get(data.ids)
        metas = [
            {**it.metadata, write_field: int(lab)}
            for it, lab in zip(items, result.labels, strict=True)
        ]
        data.collection.update(data.ids, metadatas=metas)
    texts = data.texts or [""] * len(data.ids)
    clusters = [
        {
            **info.to_dict(),
            "representatives": [
                {"id": data.ids[i], "text": texts[i]} for i in info.representatives
            ],
        }
        for info in result.clusters
    ]
    if as_json:
        print_json(
            {
                "method": method,
                "n_clusters": result.n_clusters,
                "noise": result.noise,
                "silhouette": result.silhouette,
                "clusters": clusters,
                "items": [
                    {"id": i, "cluster": int(c)}
                    for i, c in zip(data.ids, result.labels, strict=True)
                ],
            }
        )
        return
    sil = f", silhouette {result.silhouette:.3f}" if result.silhouette is not None else ""
    table = Table(title=f"{result.n_clusters} clusters ({method}{sil}), {result.noise} unassigned")
    table.add_column("cluster", justify="right", no_wrap=True)
    table.add_column("size", justify="right", no_wrap=True)
    table.add_column("keywords", min_width=12)
    table.add_column("representative", min_width=12)
    for c in clusters:
        rep = c["representatives"][0]
        table.add_row(
            str(c["label"]),
            str(c["size"]),
            cell(", ".join(c["keywords"][:6])),
            cell(rep["text"] or rep["id"]),
        )
    console.print(table)
    if write_field:
        console.print(
            f"wrote labels to metadata field {write_field!r} of {len(data.ids)} documents"
        )


# ---- dedup ------------------------------------------------------------------------------------
@app.command()
def dedup(
    input: str = typer.Argument(..., help="File (txt/jsonl/csv/parquet/npy) or collection."),
    threshold: float = typer.Option(
        0.9, "--threshold", help="Cosine similarity that counts as duplicate."
    ),
    top_k: int | None = typer.Option(None, "--top-k", help="At most this many partners per item."),
    strategy: str = typer.Option(
        "auto", "--strategy", help="auto | exact | ann (auto: ANN from 200k items)."
    ),
    drop: bool = typer.Option(
        False, "--drop", help="Collection: delete all but the first of each group."
    ),
    tag: str | None = typer.Option(
        None, "--tag", help="Collection: write the kept id into this metadata key."
    ),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="File input: write kept records as .jsonl."
    ),
    text_field: str = TextFieldOpt,
    id_field: str = IdFieldOpt,
    where: str | None = WhereOpt,
    model: str = ModelOpt,
    compute: str = ComputeOpt,
    data_dir: Path | None = DataDirOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Find near-duplicate / paraphrase pairs without an n x n matrix; optionally drop or tag."""
    from embedbox.tasks.mining import (
        DedupAction,
        DedupReport,
        MiningOptions,
        dedup_collection,
        dedup_ids,
    )

    if strategy not in ("auto", "exact", "ann"):
        raise InputError(f"unknown --strategy {strategy!r}; use auto, exact or ann")
    if drop and tag:
        raise InputError("choose --drop or --tag, not both")
    opts = MiningOptions(threshold=threshold, top_k=top_k, strategy=strategy)  # type: ignore[arg-type]
    is_file = Path(input).is_file()
    if (drop or tag) and is_file:
        raise InputError("--drop / --tag change a collection; for a file use --output KEPT.jsonl")
    if output is not None and not is_file:
        raise InputError("--output applies to file input; use --drop or --tag on a collection")
    if is_file:
        data = load_input(input, text_field, id_field, model, compute, data_dir, where)
        with progress_bar("comparing") as update:
            pairs, groups = dedup_ids(data.ids, data.vectors, opts, update)
        report = DedupReport(pairs, groups, "report", 0)
        if output is not None:
            gone = {i for g in groups for i in g[1:]}
            kept = [r for i, r in zip(data.ids, data.records, strict=True) if i not in gone]
            tmp = output.with_name(output.name + ".tmp")
            with tmp.open("w", encoding="utf-8") as fh:
                for rec in kept:
                    fh.write(json.dumps(rec, ensure_ascii=False, default=str) + "\n")
            tmp.replace(output)
    else:
        from embedbox.store.collection import Collection

        col = Collection.open(input, data_dir=data_dir)
        action: DedupAction = "drop" if drop else "tag" if tag else "report"
        with progress_bar("comparing") as update:
            report = dedup_collection(
                col, opts, action, parse_where(where), tag or "duplicate_of", update
            )  # type: ignore[arg-type]
    out = report.to_dict()
    if output is not None:
        out["output"] = str(output)
    if as_json:
        print_json(out)
        return
    console.print(
        f"{len(report.pairs)} pairs >= {threshold}, {len(report.groups)} groups, "
        f"{out['duplicates']} duplicates"
        + (f"; {report.action}: {report.changed} documents" if report.changed else "")
    )
    for a, b, s in report.pairs[:20]:
        console.print(f"  {s:.3f}  {a}  ~  {b}")
    if output is not None:
        console.print(f"wrote kept records to {output}")


# ---- map --------------------------------------------------------------------------------------
@app.command(name="map")
def map_cmd(
    input: str = typer.Argument(..., help="File (txt/jsonl/csv/parquet/npy) or collection."),
    output: Path = typer.Option(
        ..., "--output", "-o", help="map.png or map.html (interactive, self-contained)."
    ),
    color_by: str = typer.Option(
        "cluster", "--color-by", help="'cluster' (k-means), 'none', or a record / metadata field."
    ),
    method: str = typer.Option(
        "auto", "--method", help="auto (UMAP if installed, else PCA) | umap | pca | tsne."
    ),
    k: int | None = typer.Option(
        None, "--k", help="Clusters when colouring by cluster (default: by silhouette)."
    ),
    title: str | None = typer.Option(None, "--title", help="Map title."),
    width: int = typer.Option(1200, "--width", help="Width in pixels."),
    height: int = typer.Option(900, "--height", help="Height in pixels."),
    text_field: str = TextFieldOpt,
    id_field: str = IdFieldOpt,
    where: str | None = WhereOpt,
    model: str = ModelOpt,
    compute: str = ComputeOpt,
    data_dir: Path | None = DataDirOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Draw a 2-D map of the items, coloured by cluster, label or a metadata field."""
    from embedbox.tasks.projection import MapStyle, write_map

    if method not in ("auto", "umap", "pca", "tsne"):
        raise InputError(f"unknown --method {method!r}; use auto, umap, pca or tsne")
    if width < 100 or height < 100:
        raise InputError("--width and --height must be at least 100 pixels")
    data = load_input(input, text_field, id_field, model, compute, data_dir, where)
    colors: list[Any] | None
    if color_by == "none":
        colors = None
    elif color_by == "cluster":
        from embedbox.tasks.cluster import ClusterOptions, cluster_labels

        colors = [f"cluster {c}" for c in cluster_labels(data.vectors, ClusterOptions(k=k))]
    else:
        missing = [i for i, r in zip(data.ids, data.records, strict=True) if color_by not in r]
        if len(missing) == len(data.ids):
            raise InputError(
                f"no item has a field {color_by!r}; use --color-by cluster, none or a field name"
            )
        colors = [r.get(color_by) for r in data.records]
    style = MapStyle(title=title or f"{input} ({len(data.ids)} items)", size=(width, height))
    path, coords = write_map(data.vectors, output, colors, data.texts, data.ids, method, style)  # type: ignore[arg-type]
    summary = {
        "output": str(path),
        "count": len(data.ids),
        "color_by": color_by,
        "groups": len(set(map(str, colors or ["all"]))),
    }
    if as_json:
        print_json(
            {
                **summary,
                "points": [
                    {"id": i, "x": float(x), "y": float(y)}
                    for i, (x, y) in zip(data.ids, coords, strict=True)
                ],
            }
        )
        return
    console.print(f"wrote a map of {len(data.ids)} items ({summary['groups']} colours) to {path}")
