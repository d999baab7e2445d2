"""Load a finished `embed-dataset` output into a collection, without embedding again."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from embedbox.errors import Conflict, InputError, NotFound
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


def load_embeddings_into(
    collection: Any, out_dir: str | Path, progress: Progress | None = None
) -> LoadReport:
    """Upsert every row of a finished job's shards into `collection` (ids, texts, vectors and
    pass-through columns as metadata). The model and dimension must match the collection's;
    loading the same output twice leaves it unchanged."""
    import pyarrow.parquet as pq

    from embedbox.catalog import same_model

    folder = Path(out_dir)
    man = mf.load(folder)
    if man is None:
        raise NotFound(f"no {mf.MANIFEST} in {folder}; create it with `embedbox embed-dataset`")
    if not man.complete:
        raise InputError(f"the job in {folder} is not finished; rerun embed-dataset to complete it")
    model, dim, precision = man.model["name"], int(man.model["dim"]), man.model["precision"]
    if not same_model(model, collection.model):
        raise Conflict(
            f"{folder} holds {model!r} vectors but collection {collection.name!r} uses "
            f"{collection.model!r}; load into a collection created with --model {model}"
        )
    if collection.dim is not None and collection.dim != dim:
        raise Conflict(
            f"{folder} holds {dim}-d vectors but collection {collection.name!r} has dim "
            f"{collection.dim}; rerun embed-dataset without --dimensions or use another collection"
        )
    if precision not in ("float32", "float16"):
        raise InputError(
            f"{folder} holds {precision} vectors; collections take float vectors: rerun "
            "embed-dataset with --precision float32 into a new --output"
        )
    text_column = man.settings["text_column"]
    names = sorted(man.shards)
    total = sum(int(man.shards[n]["rows"]) for n in names)
    added = updated = unchanged = done = 0
    for name in names:
        table = pq.read_table(folder / f"{name}.parquet")
        if text_column not in table.column_names:
            raise InputError(
                f"{folder}/{name}.parquet has no {text_column!r} column; rerun embed-dataset "
                f"keeping it (--keep {text_column} ...)"
            )
        for batch in table.to_batches(BATCH):
            ids = batch.column("id").to_pylist()
            texts = batch.column(text_column).to_pylist()
            width = batch.schema.field("vector").type.list_size
            flat = batch.column("vector").values.to_numpy(zero_copy_only=False)
            vectors = np.asarray(flat, dtype=np.float32).reshape(-1, width)
            meta_cols = [c for c in batch.schema.names if c not in ("id", "vector", text_column)]
            columns = {c: batch.column(c).to_pylist() for c in meta_cols}
            metas = [{c: _plain(columns[c][i]) for c in meta_cols} for i in range(len(ids))]
            stats = collection.upsert_stats(texts, ids=ids, metadatas=metas, vectors=vectors)
            added, updated = added + stats.added, updated + stats.updated
            unchanged += stats.unchanged
            done += len(ids)
            if progress is not None:
                progress(done, total)
    return LoadReport(done, added, updated, unchanged, len(names))


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
