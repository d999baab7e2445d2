"""Collections: documents and metadata in SQLite, vectors in a memory-mapped file beside it,
searched by meaning or keywords.

collection.py  `Collection`, the facade: open / add / upsert / delete / get / search
validate.py    checking a batch before anything is embedded or stored
embedding.py   chunk spans and vectors of documents (takes an embedder, never the collection)
rows.py        all row-level SQL        db.py       connection, schema, migrations
search.py      the filter planner, hits, keyword and hybrid ranking   filters.py  `where` -> SQL
vecfile.py     the vector file: each vector once, memory-mapped     slots.py  writing it
vectors.py     the row arrays beside the mapped vectors   ann.py  FAISS HNSW / IVF over slots
packed.py      checksummed array files (the derived rows.bin and index.faiss)
chunking.py    token windows       paths.py  where collections live
ingest.py      files and folders into a collection          images.py  image collections
"""

from embedbox.store.collection import (
    Collection,
    Item,
    UpsertStats,
    drop_collection,
    list_collections,
)
from embedbox.store.search import Hit

__all__ = ["Collection", "Hit", "Item", "UpsertStats", "drop_collection", "list_collections"]
