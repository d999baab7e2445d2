"""Show an `EvalReport`: a comparison table (rich), and charts of quality against throughput
(PNG via matplotlib, self-contained HTML via plotly), one panel per task."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from embedbox.evaluation.runner import EvalReport, Setting, TaskResult
from embedbox.evaluation.tasks import ClassificationTask, ClusteringTask, RetrievalTask, STSTask

if TYPE_CHECKING:
    from rich.table import Table

MAIN = {t.kind: t.main for t in (STSTask, RetrievalTask, ClassificationTask, ClusteringTask)}


def _columns(report: EvalReport) -> list[tuple[str, str]]:
    """(task, metric) columns: every metric when one task ran, else each task's main ones."""
    tasks = report.tasks()
    first = {r.task: r for r in reversed(report.results)}
    if len(tasks) == 1:
        return [(tasks[0], m) for m in first[tasks[0]].metrics]
    return [(t, m) for t in tasks for m in MAIN.get(first[t].kind, ())]


def _throughput(results: list[TaskResult]) -> float:
    """Texts per second over all tasks of one setting (total texts / total model time)."""
    texts = sum(r.texts for r in results)
    seconds = sum(r.seconds for r in results)
    return texts / seconds if seconds > 0 else float("nan")


def table(report: EvalReport, title: str = "embedbox eval") -> Table:
    from rich.table import Table

    cols = _columns(report)
    by = {(r.setting, r.task): r for r in report.results}
    t = Table(title=title, caption=report.machine)
    for name in ("model", "compute", "dims", "precision", "bytes"):
        t.add_column(name, justify="right" if name in ("dims", "bytes") else "left")
    for task, metric in cols:
        t.add_column(f"{task}\n{metric}", justify="right")
    t.add_column("texts/s", justify="right")
    t.add_column("load s", justify="right")
    for setting in report.settings():
        rows = [r for r in report.results if r.setting == setting]
        first = rows[0]
        compute = setting.compute
        if compute == "auto":
            compute = f"auto={first.device_compute}"
        cells = [setting.model, compute, str(first.dim), setting.precision, str(first.vector_bytes)]
        for task, metric in cols:
            r = by.get((setting, task))
            value = None if r is None else r.metrics.get(metric)
            cells.append("" if value is None else f"{value:.4f}")
        cells.append(f"{_throughput(rows):.1f}")
        cells.append("" if first.load_s is None else f"{first.load_s:.2f}")
        t.add_row(*cells)
    return t


def _points(report: EvalReport, task: str) -> tuple[str, list[tuple[Setting, float, float]]]:
    rows = [r for r in report.results if r.task == task]
    metric = MAIN.get(rows[0].kind, tuple(rows[0].metrics))[0]
    return metric, [(r.setting, r.texts_per_s, r.metrics[metric]) for r in rows]


MARKERS = {"float32": "o", "float16": "P", "int8": "s", "uint8": "D", "binary": "^", "ubinary": "v"}


def write_png(report: EvalReport, path: str | Path, width: int = 1400, height: int = 0) -> Path:
    """One panel per task: its main metric (y) against texts/s (x, log scale). Colour: model and
    compute; marker: precision; size: width (full largest)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    tasks = report.tasks()
    cols = min(3, len(tasks))
    rows = (len(tasks) + cols - 1) // cols
    height = height or 360 * rows + 150
    dpi = 100
    fig, axes = plt.subplots(
        rows, cols, figsize=(width / dpi, height / dpi), dpi=dpi, squeeze=False
    )
    settings = report.settings()
    groups = list(dict.fromkeys((s.model, s.compute) for s in settings))
    widths = sorted({r.dim for r in report.results}, reverse=True)
    cmap = plt.get_cmap("tab10")
    for ax, task in zip(axes.flat, tasks, strict=False):
        metric, points = _points(report, task)
        dims = {r.setting: r.dim for r in report.results if r.task == task}
        for setting, speed, value in points:
            size = 70 - 45 * widths.index(dims[setting]) / max(1, len(widths) - 1)
            ax.scatter(
                [speed],
                [value],
                color=cmap(groups.index((setting.model, setting.compute)) % 10),
                marker=MARKERS.get(setting.precision, "o"),
                s=size,
                alpha=0.8,
            )
        ax.set_xscale("log")
        ax.set_title(task, fontsize=10)
        ax.set_xlabel("texts / s (log)", fontsize=8)
        ax.set_ylabel(metric, fontsize=8)
        ax.tick_params(labelsize=7, which="both")
        ax.grid(True, alpha=0.3)
    for ax in list(axes.flat)[len(tasks) :]:
        ax.axis("off")
    handles = [
        Line2D([], [], color=cmap(i % 10), marker="o", linestyle="", label=f"{m} {c}")
        for i, (m, c) in enumerate(groups)
    ]
    handles += [
        Line2D([], [], color="grey", marker=MARKERS.get(p, "o"), linestyle="", label=p)
        for p in dict.fromkeys(s.precision for s in settings)
    ]
    handles += [
        Line2D([], [], color="grey", marker="o", linestyle="", label=f"{w} dims",
               markersize=(70 - 45 * i / max(1, len(widths) - 1)) ** 0.5)
        for i, w in enumerate(widths)
    ]  # fmt: skip
    fig.legend(handles=handles, loc="lower center", ncol=min(6, len(handles)), fontsize=8)
    fig.suptitle("quality against throughput", fontsize=11)
    legend_rows = (len(handles) + 5) // 6
    fig.tight_layout(rect=(0, min(0.4, (20 + 22 * legend_rows) / height), 1, 0.96))
    out = Path(path)
    fig.savefig(out, dpi=dpi, format="png")
    plt.close(fig)
    return out


def write_html(report: EvalReport, path: str | Path) -> Path:
    """The same panels, interactive (hover names the setting); plotly.js is inlined, so the
    file opens offline."""
    import plotly.graph_objects as go
    from plotly.colors import qualitative
    from plotly.subplots import make_subplots

    palette = qualitative.Plotly + qualitative.D3
    tasks = report.tasks()
    cols = min(3, len(tasks))
    rows = (len(tasks) + cols - 1) // cols
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=tasks)
    settings = report.settings()
    for n, task in enumerate(tasks):
        metric, points = _points(report, task)
        for setting, speed, value in points:
            fig.add_trace(
                go.Scatter(
                    x=[speed],
                    y=[value],
                    mode="markers",
                    name=setting.label(),
                    legendgroup=setting.label(),
                    showlegend=n == 0,
                    marker={"size": 10, "color": palette[settings.index(setting) % len(palette)]},
                    hovertemplate=f"{setting.label()}<br>{metric} %{{y:.4f}}"
                    "<br>%{x:.1f} texts/s<extra></extra>",
                ),
                row=n // cols + 1,
                col=n % cols + 1,
            )
        fig.update_xaxes(type="log", title_text="texts / s", row=n // cols + 1, col=n % cols + 1)
        fig.update_yaxes(title_text=metric, row=n // cols + 1, col=n % cols + 1)
    fig.update_layout(
        title="quality against throughput", template="plotly_white", height=380 * rows
    )
    out = Path(path)
    fig.write_html(out, include_plotlyjs=True, full_html=True)
    return out


def write_chart(report: EvalReport, path: str | Path) -> Path:
    """PNG or HTML by the file's suffix."""
    out = Path(path)
    if out.suffix.lower() == ".png":
        return write_png(report, out)
    if out.suffix.lower() in (".html", ".htm"):
        return write_html(report, out)
    from embedbox.errors import InputError

    raise InputError(f"{out}: a chart is .png or .html, not {out.suffix or 'no suffix'!r}")
