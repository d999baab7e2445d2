"""Input files as users have them: typed CSV columns and front matter, binary files, invalid
UTF-8, empty inputs, and messages that name the file and line. Texts are embedded by a tiny
random BERT (tests/tiny_models.py): no pretrained model is loaded here."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from embedbox import EmbedboxWarning, InputError, list_collections
from embedbox.io import iter_records, read_texts
from embedbox.store.ingest import IngestOptions, check_input, iter_documents, parse_markdown
from tests.cli_runner import run_cli
from tests.tiny_models import build

ELF = b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 4 + b"\nprintf\nmain\n"
CSV = (
    "id,text,year,score,draft,zip,mixed,note\n"
    "a,old fires,1990,0.5,false,02134,1,x\n"
    "b,new fires,2001,1,TRUE,10001,two,\n"
    'c,"a text, with a comma",2010,-2.5e1,true,94105,3,y\n'
)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(build("bert", tmp_path_factory.mktemp("models") / "tiny"))


# ---- item 4: typed CSV columns and front matter --------------------------------------------
def test_csv_columns_are_typed_as_a_whole(tmp_path: Path) -> None:
    path = tmp_path / "docs.csv"
    path.write_text(CSV)
    rows = dict(iter_records(path, infer_types=True, raw_fields=("id", "text")))
    assert list(rows) == [2, 3, 4]  # the line each record starts on
    assert rows[2] == {
        "id": "a",
        "text": "old fires",
        "year": 1990,
        "score": 0.5,
        "draft": False,
        "zip": "02134",  # a leading zero keeps the column text
        "mixed": "1",  # one value is not a number: the column is text
        "note": "x",
    }
    assert rows[3]["score"] == 1.0 and isinstance(rows[3]["score"], float)
    assert rows[3]["draft"] is True and "note" not in rows[3]  # empty: no key, not ""
    assert rows[4]["score"] == -25.0 and rows[4]["text"] == "a text, with a comma"
    plain = dict(iter_records(path))
    assert plain[2]["year"] == "1990" and plain[3]["note"] == ""


def test_a_column_named_as_text_or_id_is_never_converted(tmp_path: Path) -> None:
    path = tmp_path / "codes.tsv"
    path.write_text("code\tlabel\n7\t1\n12\t2\n")
    rows = [r for _, r in iter_records(path, infer_types=True, raw_fields=("label",))]
    assert rows == [{"code": 7, "label": "1"}, {"code": 12, "label": "2"}]


def test_front_matter_values_are_typed() -> None:
    text = "---\nyear: 2001\nrating: 4.5\ndraft: false\nid: '2001'\ntags:\nauthor: Lee\n---\n# T\n"
    _, meta = parse_markdown(text)
    assert meta == {
        "year": 2001,
        "rating": 4.5,
        "draft": False,
        "id": "2001",
        "author": "Lee",
        "title": "T",
    }
    _, raw = parse_markdown(text, infer_types=False)
    assert raw["year"] == "2001" and raw["tags"] == ""


def test_range_filters_compare_numbers_from_a_csv(tmp_path: Path, tiny: str) -> None:
    path = tmp_path / "docs.csv"
    path.write_text(CSV)
    data = str(tmp_path / "data")
    out = run_cli("add", "docs", str(path), "--id-field", "id", "-m", tiny, "--data-dir", data)
    assert out.code == 0, out.stderr

    def ids(where: str, name: str = "docs") -> list[str]:
        res = run_cli("search", name, "fires", "--where", where, "--json", "--data-dir", data)
        assert res.code == 0, res.stderr
        return sorted(h["id"] for h in json.loads(res.stdout))

    assert ids('{"year": {"$gte": 2000}}') == ["b", "c"]
    assert ids('{"year": {"$lt": 2000}}') == ["a"]
    assert ids('{"draft": true}') == ["b", "c"]
    out = run_cli(
        "add", "text", str(path), "--id-field", "id", "--no-infer-types", "-m", tiny,
        "--data-dir", data,
    )  # fmt: skip
    assert out.code == 0, out.stderr
    assert ids('{"year": "1990"}', "text") == ["a"]


def test_kept_metadata_fields_may_be_empty_in_a_csv(tmp_path: Path) -> None:
    path = tmp_path / "docs.csv"
    path.write_text(CSV)
    opts = IngestOptions(id_field="id", metadata_fields=("note",))
    docs = list(iter_documents(path, "docs.csv", True, opts))
    assert [d.metadata.get("note") for d in docs] == ["x", None, "y"]


# ---- item 10: binary files and invalid UTF-8 ------------------------------------------------
@pytest.mark.parametrize("name", ["program.txt", "program.jsonl", "program.csv"])
def test_binary_files_are_refused(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(ELF)
    with pytest.raises(InputError, match=rf"{name}: looks like a binary file \(a NUL byte"):
        list(iter_records(path))


def test_a_binary_file_in_a_folder_stops_add_before_anything_is_written(
    tmp_path: Path, tiny: str
) -> None:
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "a.md").write_text("# A note\n\nSome text.\n")
    (folder / "b.txt").write_bytes(ELF)
    data = tmp_path / "data"
    out = run_cli("add", "notes", str(folder), "-m", tiny, "--data-dir", str(data))
    assert out.code == 2 and len(out.error_lines) == 1, out.stderr
    assert "b.txt: looks like a binary file" in out.stderr
    assert list_collections(data) == []


def test_invalid_utf8_is_replaced_with_one_warning_naming_the_line(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"fine\n\ncaf\xe9 au lait\nna\xefve\n")
    with pytest.warns(EmbedboxWarning, match=r"notes.txt:3: bytes that are not valid UTF-8") as w:
        records = list(iter_records(path))
    assert len(w) == 1
    assert [r["text"] for _, r in records] == ["fine", "caf\ufffd au lait", "na\ufffdve"]
    out = run_cli("embed", "--input", str(path), "--model", "no-such-model-xyz")
    warning = [line for line in out.error_lines if line.startswith("warning:")]
    assert warning == [f"warning: {path}:3: bytes that are not valid UTF-8 were replaced by "
                       "U+FFFD (the first such line of the file)"]  # fmt: skip


def test_whole_file_documents_warn_too(tmp_path: Path) -> None:
    path = tmp_path / "note.md"
    path.write_bytes(b"# Title\n\nline two\ncaf\xe9\n")
    with pytest.warns(EmbedboxWarning, match=r"note.md:4:"):
        (doc,) = iter_documents(path, "note.md", False, IngestOptions())
    assert doc.text.endswith("caf\ufffd\n")


# ---- item 14: every message names the file and line -----------------------------------------
def test_messages_name_the_line_not_the_record_number(tmp_path: Path) -> None:
    path = tmp_path / "docs.jsonl"
    path.write_text('{"text": "a"}\n\n{"body": "b"}\n')
    with pytest.raises(InputError, match=rf"^{path}:3: no field 'text' \(fields: body\)"):
        read_texts(path)
    with pytest.raises(InputError, match=r"docs.jsonl:3: no field 'text' \(fields: body\)"):
        list(iter_documents(path, "docs.jsonl", True, IngestOptions()))
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text('{"id": "a", "text": "x"}\n{"text": "y"}\n')
    with pytest.raises(InputError, match=r"mixed.jsonl:2: no 'id', though the first record"):
        read_texts(mixed)
    table = tmp_path / "docs.parquet"
    pq.write_table(pa.table({"text": ["a", " "]}), table)
    with pytest.raises(InputError, match=r"docs.parquet row 2: the text is empty"):
        read_texts(table)


def test_embed_names_a_bad_text_by_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "docs.jsonl"
    path.write_text('{"text": "a"}\n{"text": "b"}\n{"text": "  "}\n')
    out = run_cli("embed", "--input", str(path))
    assert out.code == 2 and out.error_lines == [
        f"error: {path}:3: the text is empty; remove the record or fill it in"
    ]
    out = run_cli("embed", "fine", "   ")
    assert out.error_lines == ["error: argument 2 is empty or whitespace only; remove it"]


def test_embed_long_text_errors_name_the_line(tmp_path: Path, tiny: str) -> None:
    path = tmp_path / "docs.txt"
    path.write_text("short\n\n" + "word " * 1100 + "\n")
    out = run_cli("embed", "--input", str(path), "--long-text", "error", "-m", tiny)
    assert out.code == 2 and len(out.error_lines) == 1, out.stderr
    assert out.error_lines[0].startswith(f"error: {path}:3 has 1")


# ---- item 18: ids and one name per option ---------------------------------------------------
def test_embed_keeps_the_records_ids(tmp_path: Path, tiny: str) -> None:
    path = tmp_path / "docs.jsonl"
    path.write_text('{"id": "x1", "body": "a cat"}\n{"id": "x2", "body": "a dog"}\n')
    out_file = tmp_path / "out.jsonl"
    for flag in ("--text-field", "--field"):  # the old name still works
        out = run_cli("embed", "-i", str(path), flag, "body", "-o", str(out_file), "-m", tiny)
        assert out.code == 0, out.stderr
        rows = [json.loads(line) for line in out_file.read_text().splitlines()]
        assert [r["id"] for r in rows] == ["x1", "x2"]
    other = tmp_path / "other.jsonl"
    other.write_text('{"key": 7, "text": "a cat"}\n{"text": "a dog"}\n')
    out = run_cli("embed", "-i", str(other), "--id-field", "key", "-o", str(out_file), "-m", tiny)
    assert out.code == 2 and f"{other}:2: no value in id field 'key'" in out.stderr


def test_help_names_the_old_spellings() -> None:
    assert "--field" in run_cli("embed", "--help").stdout
    helped = run_cli("embed-dataset", "--help").stdout
    assert "--text-field" in helped and "--text-column" in helped and "--id-column" in helped


def test_embed_dataset_takes_the_new_and_old_names(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text('{"doc": "d1", "text": "a"}\n')
    for flag in ("--text-field", "--text-column"):
        out = run_cli("embed-dataset", str(path), "-o", str(tmp_path / "o"), flag, "body")
        assert out.code == 2 and "no column 'body'" in out.stderr and "--text-field" in out.stderr


# ---- item 19: an input with no texts is an error, everywhere --------------------------------
@pytest.mark.parametrize(
    "args, stdin, message",
    [
        (("embed", "--input", "{empty}"), "", "{empty} holds no texts"),
        (("embed",), "", "no texts on stdin"),
        (("embed",), "\n  \n", "no texts on stdin"),
        (("cluster", "{empty}"), "", "{empty} holds no texts"),
        (("classify", "zero-shot", "--label", "a", "--input", "{empty}"), "", "holds no texts"),
        (("add", "c", "{empty}"), "", "no text to add: {empty} holds no document"),
        (("embed-dataset", "{empty}", "-o", "{out}"), "", "no rows to embed in {empty}"),
    ],
)
def test_an_input_without_texts_exits_2(
    tmp_path: Path, args: tuple[str, ...], stdin: str, message: str
) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    fill = {"empty": str(empty), "out": str(tmp_path / "out")}
    out = run_cli(*(a.format(**fill) for a in args), stdin=stdin)
    assert out.code == 2 and len(out.error_lines) == 1, out.stderr
    assert message.format(**fill) in out.stderr
    assert list_collections() == []


# ---- item 13: a failed add leaves no collection behind -------------------------------------
def test_a_wrong_field_creates_no_collection(tmp_path: Path, tiny: str) -> None:
    path = tmp_path / "docs.jsonl"
    path.write_text('{"body": "a"}\n')
    out = run_cli("add", "c", str(path), "-m", tiny)
    assert out.code == 2 and f"{path}:1: no field 'text' (fields: body)" in out.stderr
    out = run_cli("add", "c", str(path), "--metadata-field", "year", "--text-field", "body")
    assert out.code == 2 and "no metadata field(s) 'year'" in out.stderr
    out = run_cli("add", "c", "--from-embeddings", str(tmp_path))
    assert out.code == 2 and "no manifest.json in" in out.stderr
    assert list_collections() == []


def test_check_input_reads_no_further_than_it_needs(tmp_path: Path) -> None:
    path = tmp_path / "docs.jsonl"
    path.write_text('{"text": "a"}\n{not json\n')
    check_input([path])  # the broken line 2 is for the ingest itself to report
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(InputError, match=r"docs.jsonl:2: invalid JSON"):
            list(iter_records(path))


# ---- item 21: labels a classifier does not know ---------------------------------------------
def test_evaluate_warns_about_labels_the_classifier_does_not_know(
    tmp_path: Path, tiny: str
) -> None:
    from embedbox.tasks.classify import evaluate

    with pytest.warns(EmbedboxWarning, match=r"1 label\(s\) the classifier was not trained on"):
        report = evaluate(["a", "b", "sport"], ["a", "b", "a"], classes=["a", "b"])
    assert report.accuracy == pytest.approx(2 / 3)
    train = tmp_path / "train.jsonl"
    rows = [{"text": f"{w} {i}", "label": w} for i in range(4) for w in ("cat", "dog")]
    train.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    model_dir = tmp_path / "clf"
    out = run_cli(
        "classify", "train", str(train), "--label-field", "label", "-o", str(model_dir),
        "--test-fraction", "0", "-m", tiny,
    )  # fmt: skip
    assert out.code == 0, out.stderr
    test = tmp_path / "test.jsonl"
    test.write_text('{"text": "a cat", "label": "cat"}\n{"text": "news", "label": "sport"}\n')
    out = run_cli("classify", "evaluate", str(model_dir), str(test), "--label-field", "label")
    assert out.code == 0, out.stderr
    assert [line for line in out.error_lines if line.startswith("warning:")] == [
        f"warning: {test}: 1 label(s) the classifier was not trained on: 'sport' (it knows "
        "'cat', 'dog'); their examples all count as wrong"
    ]
