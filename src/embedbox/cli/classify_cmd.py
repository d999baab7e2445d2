"""`embedbox classify zero-shot | train | predict | evaluate`."""

from __future__ import annotations

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
    add_id_column,
    app,
    cell,
    console,
    get_embedder,
    print_json,
    progress_bar,
)
from embedbox.cli.inputs import TextFieldOpt, load_input
from embedbox.errors import InputError

classify_app = typer.Typer(
    help="Classify texts: zero-shot from label names, or a trained model.", no_args_is_help=True
)
app.add_typer(classify_app, name="classify")
LabelFieldOpt = typer.Option(
    ..., "--label-field", help="Record / metadata field holding the label."
)


def _texts(
    texts: list[str] | None, input: Path | None, text_field: str
) -> tuple[list[str], list[str]]:
    if texts and input is not None:
        raise InputError("give texts as arguments or --input, not both")
    if input is not None:
        from embedbox.io import read_texts

        found = read_texts(input, text_field)
        return found.ids or [str(n) for n in range(len(found.texts))], found.texts
    if not texts:
        raise InputError("no texts: pass them as arguments or with --input FILE")
    return [str(i) for i in range(len(texts))], list(texts)


def _labelled(
    data: str, text_field: str, label_field: str, model: str, compute: str, data_dir: Path | None
) -> tuple[Any, list[str]]:
    loaded = load_input(data, text_field, None, model, compute, data_dir)
    missing = [
        i
        for i, r in zip(loaded.ids, loaded.records, strict=True)
        if r.get(label_field) in (None, "")
    ]
    if missing:
        shown = ", ".join(missing[:5]) + (
            f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        )
        raise InputError(
            f"{data}: items without a {label_field!r} label: {shown}; fix them or use --label-field"
        )
    return loaded, [str(r[label_field]) for r in loaded.records]


def _print_predictions(
    ids: list[str], texts: list[str], preds: list[Any], as_json: bool, extra: dict[str, Any]
) -> None:
    if as_json:
        print_json(
            {
                **extra,
                "predictions": [
                    {"id": i, "text": t, **p.to_dict()}
                    for i, t, p in zip(ids, texts, preds, strict=True)
                ],
            }
        )
        return
    table = Table()
    add_id_column(table, ids)
    table.add_column("label", overflow="fold", max_width=30)
    table.add_column("score", justify="right", no_wrap=True)
    table.add_column("text", min_width=12)
    for i, t, p in zip(ids, texts, preds, strict=True):
        table.add_row(Text(i), Text(p.label), f"{p.score:.3f}", cell(t))
    console.print(table)


def _print_report(report: Any, as_json: bool, extra: dict[str, Any]) -> None:
    if as_json:
        print_json({**extra, **report.to_dict()})
        return
    console.print(
        f"accuracy {report.accuracy:.4f}  macro-F1 {report.macro_f1:.4f}  ({report.count} examples)"
    )
    table = Table(title="per class")
    table.add_column("label", overflow="fold")
    for name in ("precision", "recall", "f1", "support"):
        table.add_column(name, justify="right", no_wrap=True)
    for c in report.per_class:
        table.add_row(
            Text(c.label), f"{c.precision:.3f}", f"{c.recall:.3f}", f"{c.f1:.3f}", str(c.support)
        )
    console.print(table)
    cm = Table(title="confusion (rows: true, columns: predicted)")
    cm.add_column("", overflow="fold", max_width=24)
    for lab in report.labels:
        cm.add_column(Text(lab[:12]), justify="right", no_wrap=True)
    for lab, row in zip(report.labels, report.confusion, strict=True):
        cm.add_row(Text(lab), *map(str, row))
    console.print(cm)


@classify_app.command("zero-shot")
def zero_shot(
    texts: list[str] = typer.Argument(None, help="Texts to classify (or --input FILE)."),
    label: list[str] = typer.Option(
        ..., "--label", "-l", help="A label, or 'label=description' (repeat for each)."
    ),
    template: str = typer.Option(
        "{label}", "--template", help="Text embedded per label, e.g. 'A {label} movie review.'."
    ),
    input: Path | None = typer.Option(None, "--input", "-i", help="txt, jsonl, csv or parquet."),
    text_field: str = TextFieldOpt,
    model: str = ModelOpt,
    compute: str = ComputeOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Classify by similarity to the labels' descriptions; no training data needed."""
    from embedbox.tasks.classify import ZeroShotClassifier

    labels: dict[str, str] = {}
    for item in label:
        name, _, desc = item.partition("=")
        if not name.strip():
            raise InputError(f"--label {item!r} has no name; use NAME or NAME=description")
        labels[name.strip()] = desc.strip() or name.strip()
    ids, items = _texts(texts, input, text_field)
    clf = ZeroShotClassifier(get_embedder(model, compute), labels, template)
    with progress_bar("classifying") as update:
        preds = clf.predict(items, progress=update)
    _print_predictions(ids, items, preds, as_json, {"labels": labels, "template": template})


@classify_app.command("train")
def train(
    data: str = typer.Argument(
        ..., help="Labelled data: jsonl, csv, parquet file or a collection."
    ),
    output: Path = typer.Option(
        ..., "--output", "-o", help="Folder for the model (JSON + safetensors)."
    ),
    text_field: str = TextFieldOpt,
    label_field: str = LabelFieldOpt,
    method: str = typer.Option("logreg", "--method", help="logreg | knn."),
    test_fraction: float = typer.Option(
        0.2, "--test-fraction", help="Held out for the report (0: none)."
    ),
    seed: int = typer.Option(0, "--seed", help="Split seed."),
    model: str = ModelOpt,
    compute: str = ComputeOpt,
    data_dir: Path | None = DataDirOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Train a classifier on embeddings; report on a held-out split, then fit on all data."""
    from embedbox.tasks.classify import TextClassifier, evaluate, fit_head, train_test_split

    if method not in ("logreg", "knn"):
        raise InputError(f"unknown --method {method!r}; use logreg or knn")
    loaded, labels = _labelled(data, text_field, label_field, model, compute, data_dir)
    # A collection's vectors come from the collection's own model.
    model_name = (
        loaded.collection.model
        if loaded.collection is not None
        else get_embedder(model, compute).name
    )
    extra: dict[str, Any] = {"output": str(output), "method": method, "examples": len(labels)}
    report = None
    if test_fraction > 0:
        try:
            tr, te = train_test_split(len(labels), test_fraction, seed, labels)
        except ValueError as exc:  # a class too small to stratify
            raise InputError(
                f"cannot hold out {test_fraction:.0%} per class: {exc}; use --test-fraction 0"
            ) from exc
        head = fit_head(loaded.vectors[tr], [labels[i] for i in tr], method)  # type: ignore[arg-type]
        preds = head.predict(loaded.vectors[te])
        report = evaluate([labels[i] for i in te], [p.label for p in preds])
    final = TextClassifier(fit_head(loaded.vectors, labels, method), model_name)  # type: ignore[arg-type]
    final.save(output)
    extra["classes"] = final.classes
    if report is not None:
        extra["held_out"] = report.to_dict()
    if as_json:
        print_json(extra)
        return
    console.print(
        f"trained {method} on {len(labels)} examples, {len(final.classes)} classes -> {output}"
    )
    if report is not None:
        console.print(
            f"held-out ({len(te)}): accuracy {report.accuracy:.4f}, macro-F1 {report.macro_f1:.4f}"
        )


@classify_app.command("predict")
def predict(
    model_dir: Path = typer.Argument(..., help="Folder written by `classify train`."),
    texts: list[str] = typer.Argument(None, help="Texts to classify (or --input FILE)."),
    input: Path | None = typer.Option(None, "--input", "-i", help="txt, jsonl, csv or parquet."),
    text_field: str = TextFieldOpt,
    compute: str = ComputeOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Predict labels with probabilities."""
    from embedbox.tasks.classify import TextClassifier

    clf = TextClassifier.load(model_dir)
    ids, items = _texts(texts, input, text_field)
    clf = TextClassifier(clf.head, clf.model, get_embedder(clf.model, compute))
    with progress_bar("classifying") as update:
        preds = clf.predict(items, progress=update)
    _print_predictions(
        ids, items, preds, as_json, {"model_dir": str(model_dir), "classes": clf.classes}
    )


@classify_app.command("evaluate")
def evaluate_cmd(
    model_dir: Path = typer.Argument(..., help="Folder written by `classify train`."),
    data: str = typer.Argument(
        ..., help="Labelled data: jsonl, csv, parquet file or a collection."
    ),
    text_field: str = TextFieldOpt,
    label_field: str = LabelFieldOpt,
    compute: str = ComputeOpt,
    data_dir: Path | None = DataDirOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Accuracy, macro-F1, per-class table and confusion matrix on labelled data."""
    from embedbox.tasks.classify import TextClassifier, evaluate

    clf = TextClassifier.load(model_dir)
    loaded, labels = _labelled(data, text_field, label_field, clf.model, compute, data_dir)
    if loaded.collection is not None and loaded.collection.model != clf.model:
        raise InputError(
            f"classifier was trained on {clf.model!r} vectors but collection {data!r} uses "
            f"{loaded.collection.model!r}; evaluate on a file or a matching collection"
        )
    preds = clf.head.predict(loaded.vectors)
    report = evaluate(labels, [p.label for p in preds], classes=clf.classes, source=data)
    _print_report(report, as_json, {"model_dir": str(model_dir), "data": data})
