"""Load a finished `embed-dataset` output into a collection, without embedding again.

Every shard is checked (`check_output`) before the first row is written, so a bad output
loads nothing; shards with no rows (all their rows were set aside as bad) add nothing and are
skipped. Loading is an upsert, so a load stopped halfway (disk full, a bad metadata value) is
resumed by running it again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from embedbox.errors import Conflict, InputError, NotFound, StorageError
from embedbox.scale import manifest as mf
from embedbox.types import Progress

BATCH = 1000


@dataclass(frozen=True)
class LoadReport:
    rows: int
    added: int
    updated: int
    unchanged: int
    shards: int

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Output:
    """A finished job's output, checked: its model, and the shards that hold rows."""

    folder: Path
    model: str
    dim: int
    text_column: str
    shards: tuple[str, ...]  # in load order; empty shards left out
    listed: int  # shards in the manifest, empty ones included
    rows: int


def check_output(out_dir: str | Path) -> Output:
    """The output of a finished job in `out_dir`, every shard checked (present, readable, with
    id, vector and text columns of the manifest's width); an `InputError` / `NotFound` names
    the first problem."""
    import pyarrow.parquet as pq

    folder = Path(out_dir)
    man = mf.load(folder)
    if man is None:
        raise NotFound(f"no {mf.MANIFEST} in {folder}; create it with `embedbox embed-dataset`")
    if not man.complete:
        raise InputError(f"the job in {folder} is not finished; rerun embed-dataset to complete it")
    model, dim, precision = man.model["name"], int(man.model["dim"]), man.model["precision"]
    if precision not in ("float32", "float16"):
        raise InputError(
            f"{folder} holds {precision} vectors; collections take float vectors: rerun "
            "embed-dataset with --precision float32 into a new --output"
        )
    text_column = man.settings["text_column"]
    redo = "rerun embed-dataset with --overwrite to write it again"
    shards, rows = [], 0
    for name in sorted(man.shards):
        path = folder / f"{name}.parquet"
        if not path.is_file():
            raise InputError(f"{path} is listed in {mf.MANIFEST} but missing; {redo}")
        try:
            parquet = pq.ParquetFile(path)
        except Exception as exc:  # pyarrow raises several types for a damaged file
            raise InputError(f"{path}: not a readable parquet file ({exc}); {redo}") from exc
        n = int(parquet.metadata.num_rows)
        if n == 0:
            continue
        schema = parquet.schema_arrow
        for column in ("id", "vector", text_column):
            if column not in schema.names:
                keep = f" (keep it: --keep {text_column} ...)" if column == text_column else ""
                raise InputError(
                    f"{path} has no {column!r} column; {redo}{keep}; nothing was loaded"
                )
        width = getattr(schema.field("vector").type, "list_size", None)
        if width != dim:
            raise InputError(
                f"{path}: vectors of width {width}, but {mf.MANIFEST} says {dim}; {redo}"
            )
        shards.append(name)
        rows += n
    return Output(folder, model, dim, text_column, tuple(shards), len(man.shards), rows)


def check_target(output: Output, model: str, dim: int | None, name: str) -> None:
    """A `Conflict` unless collection `name` (its `model` and `dim`) can take these vectors."""
    from embedbox.catalog import same_model

    if not same_model(output.model, model):
        raise Conflict(
            f"{output.folder} holds {output.model!r} vectors but collection {name!r} uses "
            f"{model!r}; load into a collection created with --model {output.model}"
        )
    if dim is not None and dim != output.dim:
        raise Conflict(
            f"{output.folder} holds {output.dim}-d vectors but collection {name!r} has dim "
            f"{dim}; rerun embed-dataset without --dimensions or use another collection"
        )


def load_embeddings_into(
    collection: Any, out_dir: str | Path | Output, progress: Progress | None = None
) -> LoadReport:
    """Upsert every row of a finished job's shards into `collection` (ids, texts, vectors and
    pass-through columns as metadata). The model and dimension must match the collection's;
    loading the same output twice leaves it unchanged."""
    import pyarrow.parquet as pq

    output = out_dir if isinstance(out_dir, Output) else check_output(out_dir)
    check_target(output, collection.model, collection.dim, collection.name)
    text_column = output.text_column
    added = updated = unchanged = done = 0
    for name in output.shards:
        table = pq.read_table(output.folder / f"{name}.parquet")
        for batch in table.to_batches(BATCH):
            ids = batch.column("id").to_pylist()
            texts = batch.column(text_column).to_pylist()
            width = batch.schema.field("vector").type.list_size
            flat = batch.column("vector").values.to_numpy(zero_copy_only=False)
            vectors = np.asarray(flat, dtype=np.float32).reshape(-1, width)
            meta_cols = [c for c in batch.schema.names if c not in ("id", "vector", text_column)]
            columns = {c: batch.column(c).to_pylist() for c in meta_cols}
            metas = [{c: _plain(columns[c][i]) for c in meta_cols} for i in range(len(ids))]
            try:
                stats = collection.upsert_stats(texts, ids=ids, metadatas=metas, vectors=vectors)
            except (InputError, StorageError) as exc:
                said = (
                    f"{output.folder}/{name}.parquet: {exc} ({done} of {output.rows} rows were "
                    "loaded before it; loading again resumes)"
                )
                if isinstance(exc, StorageError):
                    raise StorageError(said, exc.reason) from exc
                raise InputError(said) from exc
            added, updated = added + stats.added, updated + stats.updated
            unchanged += stats.unchanged
            done += len(ids)
            if progress is not None:
                progress(done, output.rows)
    return LoadReport(done, added, updated, unchanged, output.listed)


def _plain(value: Any) -> Any:
    """A metadata value JSON can hold (dates, bytes and the like become text; NaN becomes None)."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return str(value)
