"""2-D maps: a real PNG of the asked size with several colours; HTML that holds every point."""

from __future__ import annotations

import json
import random
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from embedbox import Embedder, InputError
from embedbox.datasets import rotten_tomatoes
from embedbox.tasks.projection import MapStyle, project, write_html, write_map, write_png


@pytest.fixture(scope="module")
def reviews(embedder: Embedder) -> tuple[list[str], list[str], np.ndarray]:
    data = list(rotten_tomatoes())
    random.Random(3).shuffle(data)
    data = data[:120]
    texts = [d.text for d in data]
    return texts, [d.label for d in data], embedder.embed(texts)


def test_projections(reviews: tuple[list[str], list[str], np.ndarray]) -> None:
    _, _, x = reviews
    for method in ("pca", "tsne"):
        coords = project(x, method)  # type: ignore[arg-type]
        assert coords.shape == (len(x), 2) and np.isfinite(coords).all()
        assert coords.std(axis=0).min() > 0
    with pytest.raises(InputError, match="at least 2 items"):
        project(x[:1])
    with pytest.raises(InputError, match="unknown projection"):
        project(x, "mds")  # type: ignore[arg-type]


@pytest.mark.slow
def test_umap_projection(reviews: tuple[list[str], list[str], np.ndarray]) -> None:
    _, _, x = reviews
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        coords = project(x, "umap")
    assert coords.shape == (len(x), 2) and np.isfinite(coords).all()
    assert not [w for w in caught if "n_jobs" in str(w.message)]  # no noise on every `map`


def test_png_is_real_image(
    tmp_path: Path, reviews: tuple[list[str], list[str], np.ndarray]
) -> None:
    _, labels, x = reviews
    path, coords = write_map(
        x, tmp_path / "map.png", labels, method="pca", style=MapStyle(size=(640, 480))
    )
    with Image.open(path) as img:
        assert img.format == "PNG" and img.size == (640, 480)
        rgb = np.asarray(img.convert("RGB")).reshape(-1, 3)
    colours = {tuple(c) for c in rgb[::7].tolist()}
    # tab10 blue and orange markers (blended with the white background) are both drawn
    r, b = rgb[:, 0].astype(int), rgb[:, 2].astype(int)
    blue, orange = b - r > 60, r - b > 60
    assert len(colours) > 10 and blue.sum() > 50 and orange.sum() > 50
    assert coords.shape == (120, 2)


def test_html_holds_every_point(
    tmp_path: Path, reviews: tuple[list[str], list[str], np.ndarray]
) -> None:
    texts, labels, x = reviews
    coords = project(x, "pca")
    ids = [f"rev-{i}" for i in range(len(x))]
    path = write_html(coords, tmp_path / "map.html", labels, texts, ids)
    page = path.read_text(encoding="utf-8")
    assert "<script src=" not in page and "plotly.js" in page.lower()  # self-contained
    assert all(f'"{i}"' in page for i in ids)  # customdata carries each id
    traces = re.findall(r'"customdata":\[(.*?)\]', page)
    assert sum(len(json.loads(f"[{t}]")) for t in traces) == len(x)
    assert '"name":"fresh"' in page and '"name":"rotten"' in page


def test_bad_map_input(tmp_path: Path) -> None:
    coords = np.zeros((3, 2), np.float32)
    with pytest.raises(InputError, match="3 points but 2 colors"):
        write_png(coords, tmp_path / "a.png", ["a", "b"])
    with pytest.raises(InputError, match=r"\.png or \.html"):
        write_map(np.eye(3, dtype=np.float32), tmp_path / "a.svg")


def test_cli_map_collection(
    tmp_path: Path,
    embedder: Embedder,
    reviews: tuple[list[str], list[str], np.ndarray],
    capsys: pytest.CaptureFixture[str],
) -> None:
    from embedbox.cli import main as cli_main
    from embedbox.store.collection import Collection

    texts, labels, x = reviews
    col = Collection.open("reviews", data_dir=tmp_path, create=True, embedder=embedder)
    col.add(
        texts[:60],
        ids=[f"r{i}" for i in range(60)],
        metadatas=[{"label": v} for v in labels[:60]],
        vectors=x[:60],
    )
    col.close()
    out = tmp_path / "m.html"
    cli_main(
        [
            "map",
            "reviews",
            "--data-dir",
            str(tmp_path),
            "--color-by",
            "label",
            "--method",
            "pca",
            "-o",
            str(out),
            "--json",
        ]
    )
    summary = json.loads(capsys.readouterr().out)
    assert summary["count"] == 60 and summary["groups"] == 2 and len(summary["points"]) == 60
    assert out.stat().st_size > 1_000_000  # plotly.js is inlined
    with pytest.raises(SystemExit):
        cli_main(
            ["map", "reviews", "--data-dir", str(tmp_path), "--color-by", "stars", "-o", str(out)]
        )
    assert "no item has a field 'stars'" in capsys.readouterr().err
