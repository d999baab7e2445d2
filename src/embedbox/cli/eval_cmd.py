"""`embedbox eval sts | retrieval | classification | clustering | suite | collection`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import typer

from embedbox.cli.common import (
    ComputeOpt,
    DataDirOpt,
    JsonOpt,
    app,
    console,
    err_console,
    print_json,
)
from embedbox.errors import InputError

eval_app = typer.Typer(
    help="Compare models, compute, dimensions and precision on tasks, or a collection's search.",
    no_args_is_help=True,
)
app.add_typer(eval_app, name="eval")

ModelsOpt = typer.Option(
    None, "--model", "-m", help="Model to evaluate (repeat, or comma-separate; default MiniLM)."
)
ComputesOpt = typer.Option(
    None, "--compute", help="auto | fp32 | bf16 | fp16; repeat or comma-separate (default auto)."
)
DimensionsOpt = typer.Option(
    None, "--dimensions", help="Output widths: 'full' or a number; repeat or comma-separate."
)
PrecisionsOpt = typer.Option(
    None,
    "--precision",
    help="float32 | float16 | int8 | uint8 | binary | ubinary; repeat or comma-separate.",
)
OutputOpt = typer.Option(None, "--output", "-o", help="Also write the JSON rows to this file.")
ChartOpt = typer.Option(
    None, "--chart", help="Write quality against throughput to a .png or .html (repeatable)."
)
TextFieldOpt = typer.Option("text", "--text-field", help="Field holding the text.")
LabelFieldOpt = typer.Option("label", "--label-field", help="Field holding the label.")


def _split(values: Sequence[str] | None, default: str) -> list[str]:
    out = [v.strip() for value in values or [default] for v in value.split(",") if v.strip()]
    return out or [default]


def _dimensions(values: Sequence[str] | None) -> list[int | None]:
    out: list[int | None] = []
    for v in _split(values, "full"):
        if v.lower() == "full":
            out.append(None)
            continue
        try:
            out.append(int(v))
        except ValueError:
            raise InputError(f"--dimensions takes 'full' or a whole number, not {v!r}") from None
    return out


def _run(
    tasks: list[Any],
    models: list[str] | None,
    computes: list[str] | None,
    dimensions: list[str] | None,
    precisions: list[str] | None,
    as_json: bool,
    charts: list[Path] | None,
    output: Path | None = None,
) -> None:
    from embedbox.cli.common import get_embedder
    from embedbox.evaluation import evaluate
    from embedbox.evaluation.report import table, write_chart

    for chart in charts or []:
        if chart.suffix.lower() not in (".png", ".html", ".htm"):
            raise InputError(f"--chart {chart}: use a .png or .html file")
    quiet = as_json or not err_console.is_terminal

    def say(text: str) -> None:
        if not quiet:
            err_console.print(f"[dim]{text}[/dim]", highlight=False)

    report = evaluate(
        tasks,
        _split(models, "all-MiniLM-L6-v2"),
        compute=_split(computes, "auto"),
        dimensions=_dimensions(dimensions),
        precision=_split(precisions, "float32"),
        message=say,
        loader=get_embedder,
    )
    for chart in charts or []:
        write_chart(report, chart)
    if output is not None:
        output.write_text(json.dumps(report.to_dicts(), indent=1) + "\n", encoding="utf-8")
    if as_json:
        print_json(report.to_dicts())
        return
    console.print(table(report))
    for chart in charts or []:
        console.print(f"chart: {chart}")


@eval_app.command("sts")
def sts(
    path: Path = typer.Argument(
        ..., help="Pairs: .jsonl / .tsv / .csv with sentence1, sentence2, score."
    ),
    model: list[str] | None = ModelsOpt,
    compute: list[str] | None = ComputesOpt,
    dimensions: list[str] | None = DimensionsOpt,
    precision: list[str] | None = PrecisionsOpt,
    chart: list[Path] | None = ChartOpt,
    output: Path | None = OutputOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Semantic similarity: Spearman and Pearson of cosine against gold scores."""
    from embedbox.evaluation import STSTask, read_pairs

    task = STSTask(path.stem, read_pairs(path), source=str(path))
    _run([task], model, compute, dimensions, precision, as_json, chart, output)


@eval_app.command("retrieval")
def retrieval(
    path: Path = typer.Argument(..., help="BEIR folder: corpus.jsonl, queries.jsonl, qrels/*.tsv."),
    split: str = typer.Option("test", "--split", help="Which qrels/<split>.tsv to use."),
    model: list[str] | None = ModelsOpt,
    compute: list[str] | None = ComputesOpt,
    dimensions: list[str] | None = DimensionsOpt,
    precision: list[str] | None = PrecisionsOpt,
    chart: list[Path] | None = ChartOpt,
    output: Path | None = OutputOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Retrieval: nDCG, MAP, MRR and recall at 1, 10 and 100 (trec_eval definitions)."""
    from embedbox.evaluation import RetrievalTask, read_beir

    task = RetrievalTask(path.name, read_beir(path, split), source=f"{path} ({split})")
    _run([task], model, compute, dimensions, precision, as_json, chart, output)


@eval_app.command("classification")
def classification(
    path: Path = typer.Argument(..., help="Labelled texts: .jsonl / .csv / .tsv."),
    test: Path | None = typer.Option(None, "--test", help="A test file (else k-fold on PATH)."),
    folds: int = typer.Option(5, "--folds", help="Stratified folds when there is no --test."),
    text_field: str = TextFieldOpt,
    label_field: str = LabelFieldOpt,
    model: list[str] | None = ModelsOpt,
    compute: list[str] | None = ComputesOpt,
    dimensions: list[str] | None = DimensionsOpt,
    precision: list[str] | None = PrecisionsOpt,
    chart: list[Path] | None = ChartOpt,
    output: Path | None = OutputOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Classification: logistic regression accuracy and macro-F1."""
    from embedbox.evaluation import ClassificationTask, read_labelled

    train = read_labelled(path, text_field, label_field)
    held_out = None if test is None else read_labelled(test, text_field, label_field, 1)
    task = ClassificationTask(path.stem, train, held_out, folds=folds, source=str(path))
    _run([task], model, compute, dimensions, precision, as_json, chart, output)


@eval_app.command("clustering")
def clustering(
    path: Path = typer.Argument(..., help="Labelled texts: .jsonl / .csv / .tsv."),
    text_field: str = TextFieldOpt,
    label_field: str = LabelFieldOpt,
    model: list[str] | None = ModelsOpt,
    compute: list[str] | None = ComputesOpt,
    dimensions: list[str] | None = DimensionsOpt,
    precision: list[str] | None = PrecisionsOpt,
    chart: list[Path] | None = ChartOpt,
    output: Path | None = OutputOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Clustering: k-means with k = the number of labels; V-measure and ARI."""
    from embedbox.evaluation import ClusteringTask, read_labelled

    task = ClusteringTask(path.stem, read_labelled(path, text_field, label_field), source=str(path))
    _run([task], model, compute, dimensions, precision, as_json, chart, output)


@eval_app.command("suite")
def suite_cmd(
    task: list[str] | None = typer.Option(
        None,
        "--task",
        help="Run only these (sts-b, sts-b-retrieval, rotten-tomatoes, "
        "mini-newsgroups, lee); repeat or comma-separate.",
    ),
    limit: int | None = typer.Option(None, "--limit", help="Keep the first N items of each task."),
    model: list[str] | None = ModelsOpt,
    compute: list[str] | None = ComputesOpt,
    dimensions: list[str] | None = DimensionsOpt,
    precision: list[str] | None = PrecisionsOpt,
    chart: list[Path] | None = ChartOpt,
    output: Path | None = OutputOpt,
    as_json: bool = JsonOpt,
) -> None:
    """The shipped tasks (offline): STS-B, STS-B retrieval, rotten tomatoes, mini newsgroups, Lee."""
    from embedbox.evaluation import suite

    names = _split(task, "") if task else None
    _run(suite(names, limit), model, compute, dimensions, precision, as_json, chart, output)


@eval_app.command("collection")
def collection(
    name: str = typer.Argument(..., help="Collection name or folder."),
    queries: Path = typer.Option(
        ..., "--queries", help="Queries: .jsonl (_id, text) or .tsv (id, text)."
    ),
    qrels: Path = typer.Option(..., "--qrels", help="Judgements: .tsv query-id, corpus-id, score."),
    mode: str = typer.Option("semantic,keyword,hybrid", "--mode", help="Comma-separated modes."),
    weights: list[str] | None = typer.Option(
        None, "--weights", help="Hybrid weights 'semantic,keyword' (repeatable; default 1,1)."
    ),
    where: list[str] | None = typer.Option(
        None, "--where", help="A metadata filter as JSON (repeatable; each is compared)."
    ),
    k: int = typer.Option(100, "-k", help="Hits per query."),
    compute: str = ComputeOpt,
    data_dir: Path | None = DataDirOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Search quality of a collection per mode, hybrid weights and filter."""
    from embedbox.cli.common import get_embedder, parse_where
    from embedbox.evaluation import evaluate_collection, read_qrels, read_queries
    from embedbox.evaluation.collection import check_qrels_documents
    from embedbox.store.collection import Collection

    pairs: list[tuple[float, float]] = []
    for w in weights or ["1,1"]:
        try:
            a, b = (float(x) for x in w.split(","))
        except ValueError:
            raise InputError(f"--weights takes 'semantic,keyword', e.g. 1,0.5, not {w!r}") from None
        pairs.append((a, b))
    filters = [parse_where(w) for w in where] if where else [None]
    with Collection.open(name, data_dir=data_dir) as probe:
        model, kind = probe.model, probe.kind
    embedder = get_embedder(model, compute) if kind in ("text", "text-image") else None
    col = Collection.open(name, data_dir=data_dir, embedder=embedder)
    qs = read_queries(queries)
    judged = read_qrels(qrels, qs, None, col.name)
    check_qrels_documents(qrels, col)
    report = evaluate_collection(
        col, qs, judged, modes=_split([mode], "semantic"), weights=pairs, wheres=filters, k=k
    )
    if as_json:
        print_json(report.to_dicts())
        return
    console.print(report.table())
