"""Ingest from files and folders (txt, markdown, jsonl, csv, parquet) and the CLI on top of it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from embedbox import Embedder
from embedbox.cli import main
from embedbox.datasets import lee_background
from embedbox.errors import Conflict, InputError, NotFound
from embedbox.store.collection import Collection
from embedbox.store.ingest import IngestOptions, ingest, parse_markdown


@pytest.fixture(scope="module")
def news() -> list[str]:
    return [d[:300] for d in lee_background()[40:52]]


@pytest.fixture
def corpus(tmp_path: Path, news: list[str]) -> Path:
    root = tmp_path / "docs"
    (root / "sub").mkdir(parents=True)
    (root / ".hidden").mkdir()
    (root / "a.md").write_text(f"---\nauthor: ABC News\ndate: 2001\n---\n# Fires\n\n{news[0]}\n")
    (root / "sub" / "b.txt").write_text(news[1])
    (root / ".hidden" / "c.txt").write_text("never read")
    (root / "skip.bin").write_bytes(b"\x00")
    rows = [{"doc": f"j{i}", "body": news[2 + i], "year": 2000 + i, "lang": "en"} for i in range(3)]
    (root / "sub" / "c.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return root


class _Counting:
    def __init__(self, emb: Embedder) -> None:
        self.emb, self.texts = emb, 0

    def __call__(self, texts: list[str], **kw: Any) -> np.ndarray:
        self.texts += len(texts)
        return self.emb.__class__.embed(self.emb, texts, **kw)


def test_folder_ingest_is_resumable(
    tmp_path: Path,
    corpus: Path,
    embedder: Embedder,
    monkeypatch: pytest.MonkeyPatch,
    news: list[str],
) -> None:
    counter = _Counting(embedder)
    monkeypatch.setattr(embedder, "embed", counter)
    col = Collection.open(tmp_path / "col", create=True, embedder=embedder)
    opts = IngestOptions(id_field="doc", text_field="body", batch_size=2)
    seen: list[tuple[int, int]] = []
    report = ingest(col, [corpus], opts, progress=lambda d, t: seen.append((d, t)))
    assert (report.files, report.documents, report.added, report.batches) == (3, 5, 5, 3)
    assert seen[-1] == (5, 5)
    assert sorted(i.id for i in col) == ["a.md", "j0", "j1", "j2", "sub/b.txt"]
    (md,) = col.get(["a.md"])
    assert md.metadata == {"author": "ABC News", "date": 2001, "title": "Fires", "source": "a.md"}
    assert md.text.startswith("# Fires") and "author:" not in md.text
    assert col.get(["j1"])[0].metadata == {"source": "sub/c.jsonl", "year": 2001, "lang": "en"}
    assert col.get(["sub/b.txt"])[0].text == news[1]
    assert counter.texts == 5

    again = ingest(col, [corpus], opts)  # nothing changed: nothing embedded
    assert (again.added, again.updated, again.unchanged, counter.texts) == (0, 0, 5, 5)
    (corpus / "sub" / "b.txt").write_text("A completely new story about cricket in Perth.")
    third = ingest(col, [corpus], opts)
    assert (third.updated, third.unchanged, counter.texts) == (1, 4, 6)
    assert col.search("cricket", k=1)[0].id == "sub/b.txt"
    assert [h.id for h in col.search("news", k=5, where={"year": {"$gte": 2001}})] in (
        ["j1", "j2"],
        ["j2", "j1"],
    )


def test_lines_csv_parquet_and_field_selection(
    tmp_path: Path, embedder: Embedder, news: list[str]
) -> None:
    lines = tmp_path / "lines.txt"
    lines.write_text("\n".join(news[:3]) + "\n\n")
    table = tmp_path / "t.csv"
    table.write_text("id,text,topic,junk\nc1,Rain in Sydney,weather,x\nc2,Stocks fell,finance,y\n")
    pq.write_table(
        pa.table({"key": ["p1", "p2"], "content": news[3:5], "n": [1, 2], "tags": [["a"], ["b"]]}),
        tmp_path / "t.parquet",
    )
    col = Collection.open(tmp_path / "col", create=True, embedder=embedder)
    r1 = ingest(col, [lines])  # a txt file named directly: one document per line
    assert r1.documents == 3
    assert col.get(["lines.txt:2"])[0].metadata == {"source": "lines.txt", "line": 2}
    ingest(col, [table], IngestOptions(id_field="id", metadata_fields=("topic",)))
    assert col.get(["c1"])[0].metadata == {"source": "t.csv", "topic": "weather"}
    ingest(
        col,
        [tmp_path / "t.parquet"],
        IngestOptions(id_field="key", text_field="content", metadata_fields=("n", "tags")),
    )
    assert col.get(["p2"])[0].metadata == {"source": "t.parquet", "n": 2, "tags": ["b"]}
    assert col.search("weather", k=1, where={"topic": "weather"})[0].id == "c1"
    assert col.count() == 7


def test_ingest_errors_name_the_item_and_the_fix(tmp_path: Path, embedder: Embedder) -> None:
    col = Collection.open(tmp_path / "col", create=True, embedder=embedder)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n{"body": "no text"}\n')
    with pytest.raises(InputError, match=r"bad.jsonl:2: no field 'text' .*--text-field"):
        ingest(col, [bad])
    with pytest.raises(NotFound, match="no such file or folder"):
        ingest(col, [tmp_path / "missing"])
    (tmp_path / "x.pdf").write_text("x")
    with pytest.raises(InputError, match=r"x.pdf: unsupported file type"):
        ingest(col, [tmp_path / "x.pdf"])
    dup = tmp_path / "dup.jsonl"
    dup.write_text('{"id": "a", "text": "one"}\n{"id": "a", "text": "two"}\n')
    with pytest.raises(Conflict, match="id 'a' appears twice"):
        ingest(col, [dup], IngestOptions(id_field="id"))
    assert parse_markdown("no front matter\n# Title") == (
        "no front matter\n# Title",
        {"title": "Title"},
    )


@pytest.mark.model
def test_cli_end_to_end(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    news: list[str],
) -> None:
    monkeypatch.setenv("EMBEDBOX_DATA_DIR", str(tmp_path / "data"))
    data = tmp_path / "n.jsonl"
    rows = [{"id": f"n{i}", "text": t, "i": i} for i, t in enumerate(news[:6])]
    data.write_text("\n".join(json.dumps(r) for r in rows))

    def run(*args: str) -> Any:
        capsys.readouterr()
        main(list(args))
        return json.loads(capsys.readouterr().out)

    assert run("collection", "create", "news", "--json")["count"] == 0
    report = run("add", "news", str(data), "--id-field", "id", "--json")
    assert (report["added"], report["count"]) == (6, 6)
    assert run("collection", "info", "news", "--json")["count"] == 6
    hits = run("search", "news", news[2][:80], "-k", "2", "--json")
    assert hits[0]["id"] == "n2" and set(hits[0]) >= {"id", "score", "text", "metadata"}
    hits = run("search", "news", "x", "--where", '{"i": {"$gt": 4}}', "--mode", "hybrid", "--json")
    assert [h["id"] for h in hits] == ["n5"]
    # Several queries, a file of queries, or .npy vectors: one hit list each, in order.
    batch = run("search", "news", news[2][:80], news[4][:80], "-k", "1", "--json")
    assert [(b["query"], b["hits"][0]["id"]) for b in batch] == [
        (news[2][:80], "n2"),
        (news[4][:80], "n4"),
    ]
    queries = tmp_path / "q.txt"
    queries.write_text(f"{news[1][:80]}\n{news[3][:80]}\n")
    assert [b["hits"][0]["id"] for b in run("search", "news", "-i", str(queries), "--json")] == [
        "n1",
        "n3",
    ]
    vectors = tmp_path / "v.npy"
    np.save(vectors, Collection.open("news").vectors(ids=["n5"])[1])
    by_vector = run("search", "news", "-i", str(vectors), "-k", "1", "--json")
    assert [(b["query"], [h["id"] for h in b["hits"]]) for b in by_vector] == [("v.npy[0]", ["n5"])]
    only = run(
        "search",
        "news",
        "x",
        "--where-document",
        json.dumps({"$contains": news[3][5:25]}),
        "--json",
    )
    assert [h["id"] for h in only] == ["n3"]
    for bad, message in [
        (["search", "news"], "give a query (or several), or --input FILE"),
        (["search", "news", "x", "-i", str(queries)], "not both"),
        (
            ["search", "news", "x", "--where-document", "[1]"],
            "--where-document must be a JSON object",
        ),
    ]:
        with pytest.raises(SystemExit) as exc:
            main(bad)
        assert exc.value.code == 2 and message in capsys.readouterr().err
    assert [i["id"] for i in run("get", "news", "n1", "n0", "--json")] == ["n1", "n0"]
    assert run("delete", "news", "--where", '{"i": {"$lt": 2}}', "--json") == {
        "deleted": 2,
        "count": 4,
    }
    assert [c["name"] for c in run("collection", "list", "--json")] == ["news"]
    with pytest.raises(SystemExit) as exc:
        main(["search", "news", "x", "--where", "{bad"])
    assert exc.value.code == 2 and "--where is not valid JSON" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["get", "news", "n0"])
    assert "not in collection 'news': 'n0'" in capsys.readouterr().err
    assert run("collection", "drop", "news", "--yes", "--json") == {"dropped": "news", "count": 4}


@pytest.mark.model
def test_cli_add_images(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from PIL import Image
    from skimage import data as photos

    monkeypatch.setenv("EMBEDBOX_DATA_DIR", str(tmp_path / "data"))
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("coffee", "chelsea", "rocket", "astronaut"):
        Image.fromarray(getattr(photos, name)()).convert("RGB").save(folder / f"{name}.png")
    (folder / "notes.txt").write_text("not an image")
    capsys.readouterr()
    main(["add", "pics", "--images", str(folder), "--batch-size", "2", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert (report["collection"], report["added"], report["count"]) == ("pics", 4, 4)
    with Collection.open("pics") as col:
        assert col.info()["kind"] == "image" and col.dim == 1280
        ids, vecs = col.vectors()
        rocket = next(i for i in ids if i.endswith("rocket.png"))
        assert col.search(vecs[ids.index(rocket)], k=1)[0].id == rocket
    with pytest.raises(SystemExit) as exc:
        main(["add", "pics", str(folder), "--images", str(folder)])
    assert exc.value.code == 2 and "--images cannot be combined" in capsys.readouterr().err
