"""2-D maps of embeddings: UMAP when installed (else PCA or t-SNE), drawn as a PNG
(matplotlib, Agg backend) or a self-contained interactive HTML page (plotly, plotly.js inlined),
coloured by cluster, label or a metadata field, with hover text."""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from embedbox.errors import InputError, require
from embedbox.similarity import as_matrix, normalize

__all__ = ["MapStyle", "has_umap", "project", "write_html", "write_map", "write_png"]

ProjectMethod = Literal["auto", "umap", "pca", "tsne"]
MAP_FORMATS = ("png", "html")


def has_umap() -> bool:
    import importlib.util

    return importlib.util.find_spec("umap") is not None


def project(vectors: np.ndarray, method: ProjectMethod = "auto", seed: int = 0) -> np.ndarray:
    """(n, d) -> (n, 2) float32 coordinates. `auto`: UMAP if installed (and n >= 10), else PCA."""
    x = normalize(as_matrix(vectors))
    n = len(x)
    if n < 2:
        raise InputError(f"a map needs at least 2 items, got {n}")
    if method == "auto":
        method = "umap" if has_umap() and n >= 10 else "pca"
    if method == "pca":
        require("sklearn", "tasks")
        from sklearn.decomposition import PCA

        if x.shape[1] < 2:
            raise InputError("vectors need at least 2 dimensions for a map")
        coords = PCA(n_components=2, random_state=seed).fit_transform(x)
    elif method == "tsne":
        from sklearn.manifold import TSNE

        perplexity = float(min(30, max(2, (n - 1) // 3)))
        coords = TSNE(
            2, perplexity=perplexity, metric="cosine", init="pca", random_state=seed
        ).fit_transform(x)
    elif method == "umap":
        if not has_umap():
            raise InputError("UMAP is not installed: `pip install umap-learn`, or use pca / tsne")
        require("umap", "maps")
        import umap

        neighbours = min(15, n - 1)
        # A seed makes UMAP single-threaded; saying n_jobs=1 spares its warning about that.
        reducer = umap.UMAP(
            n_components=2, n_neighbors=neighbours, metric="cosine", random_state=seed, n_jobs=1
        )
        coords = reducer.fit_transform(x)
    else:
        raise InputError(f"unknown projection {method!r}; use auto, umap, pca or tsne")
    return np.asarray(coords, dtype=np.float32)


@dataclass(frozen=True)
class MapStyle:
    """Look of a map. `size` is in pixels (width, height)."""

    title: str = "embedbox map"
    size: tuple[int, int] = (1200, 900)
    point_size: float = 12.0
    legend_max: int = 20


def _check(
    coords: np.ndarray, colors: Sequence[object] | None, hover: Sequence[str] | None
) -> None:
    if coords.ndim != 2 or coords.shape[1] != 2:
        raise InputError(f"coordinates must have shape (n, 2), got {coords.shape}")
    for name, seq in (("colors", colors), ("hover texts", hover)):
        if seq is not None and len(seq) != len(coords):
            raise InputError(f"{len(coords)} points but {len(seq)} {name}")


def _groups(colors: Sequence[object] | None, n: int) -> list[str]:
    return ["all"] * n if colors is None else ["(none)" if c is None else str(c) for c in colors]


def write_png(
    coords: np.ndarray,
    path: str | Path,
    colors: Sequence[object] | None = None,
    style: MapStyle | None = None,
) -> Path:
    """Scatter plot PNG of exactly `style.size` pixels, one colour per distinct `colors` value."""
    require("matplotlib", "tasks")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    st = style or MapStyle()
    _check(coords, colors, None)
    groups = _groups(colors, len(coords))
    names = sorted(set(groups), key=_natural)
    dpi = 100
    fig, ax = plt.subplots(figsize=(st.size[0] / dpi, st.size[1] / dpi), dpi=dpi)
    cmap = plt.get_cmap("tab20" if len(names) > 10 else "tab10")
    for i, name in enumerate(names):
        mask = np.array([g == name for g in groups])
        ax.scatter(
            coords[mask, 0],
            coords[mask, 1],
            s=st.point_size,
            color=cmap(i % cmap.N),
            label=name,
            alpha=0.8,
            linewidths=0,
        )
    ax.set_title(st.title)
    ax.set_xticks([])
    ax.set_yticks([])
    if 1 < len(names) <= st.legend_max:
        ax.legend(loc="best", fontsize=8, markerscale=1.5, frameon=True)
    out = Path(path)
    fig.savefig(out, dpi=dpi, format="png")
    plt.close(fig)
    return out


def write_html(
    coords: np.ndarray,
    path: str | Path,
    colors: Sequence[object] | None = None,
    hover: Sequence[str] | None = None,
    ids: Sequence[str] | None = None,
    style: MapStyle | None = None,
) -> Path:
    """Interactive, self-contained HTML (plotly.js inlined: opens offline); one trace per
    colour group, hover shows the id and the (shortened) text."""
    require("plotly", "tasks")
    import plotly.graph_objects as go

    st = style or MapStyle()
    _check(coords, colors, hover)
    n = len(coords)
    groups = _groups(colors, n)
    labels = [str(i) for i in ids] if ids is not None else [str(i) for i in range(n)]
    tips = [_tip(labels[i], hover[i] if hover is not None else "") for i in range(n)]
    fig = go.Figure()
    for name in sorted(set(groups), key=_natural):
        idx = [i for i in range(n) if groups[i] == name]
        fig.add_trace(
            go.Scattergl(
                x=coords[idx, 0].tolist(),
                y=coords[idx, 1].tolist(),
                mode="markers",
                name=name,
                text=[tips[i] for i in idx],
                customdata=[labels[i] for i in idx],
                hovertemplate="%{text}<extra>%{fullData.name}</extra>",
                marker={"size": max(3.0, st.point_size / 2), "opacity": 0.8},
            )
        )
    fig.update_layout(
        title=st.title,
        width=st.size[0],
        height=st.size[1],
        template="plotly_white",
        xaxis={"visible": False},
        yaxis={"visible": False},
        showlegend=len(set(groups)) > 1,
    )
    out = Path(path)
    fig.write_html(out, include_plotlyjs=True, full_html=True)
    return out


def _tip(label: str, text: str, limit: int = 200) -> str:
    short = text if len(text) <= limit else text[: limit - 1] + "…"
    return f"<b>{html.escape(label)}</b><br>{html.escape(short).replace(chr(10), '<br>')}"


def _natural(name: str) -> tuple[int, float, str]:
    try:
        return (0, float(name), name)
    except ValueError:
        return (1, 0.0, name)


def write_map(
    vectors: np.ndarray,
    path: str | Path,
    colors: Sequence[object] | None = None,
    hover: Sequence[str] | None = None,
    ids: Sequence[str] | None = None,
    method: ProjectMethod = "auto",
    style: MapStyle | None = None,
    seed: int = 0,
) -> tuple[Path, np.ndarray]:
    """Project and draw in one step; the format follows the suffix (.png or .html).
    Returns the written path and the 2-D coordinates."""
    out = Path(path)
    fmt = out.suffix.lower().lstrip(".")
    if fmt not in MAP_FORMATS:
        raise InputError(f"{out}: a map is written as .png or .html, not '.{fmt}'")
    coords = project(vectors, method, seed)
    if fmt == "png":
        return write_png(coords, out, colors, style), coords
    return write_html(coords, out, colors, hover, ids, style), coords
