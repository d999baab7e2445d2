"""Collections: documents, metadata and vectors in SQLite, searched by meaning or keywords.

collection.py  `Collection`, the facade: open / add / upsert / delete / get / search
validate.py    checking a batch before anything is embedded or stored
embedding.py   chunk spans and vectors of documents (takes an embedder, never the collection)
rows.py        all row-level SQL        db.py       connection, schema, migrations
search.py      top-k, hits, keyword and hybrid ranking      filters.py  `where` -> SQL
vectors.py     the in-memory vector table        ann.py      the FAISS HNSW index
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
