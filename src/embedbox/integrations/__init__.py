"""embedbox inside other frameworks. Each module needs its framework (an optional extra):

    embedbox.integrations.langchain    EmbedboxEmbeddings, EmbedboxVectorStore  [langchain]
    embedbox.integrations.llamaindex   EmbedboxEmbedding, EmbedboxVectorStore   [llamaindex]
    embedbox.integrations.chroma       EmbedboxEmbeddingFunction                [chroma]
    embedbox.integrations.st_compat    SentenceTransformer (drop-in encode)     (no extra)

Importing this package imports no framework; importing a module whose framework is missing
raises `MissingDependency` naming the extra to install.
"""

from __future__ import annotations

from embedbox.errors import MissingDependency

__all__ = ["MissingDependency", "missing"]


def missing(package: str, extra: str, exc: ImportError) -> MissingDependency:
    """The error for a failed framework import: `raise missing("chromadb", "chroma", exc)`."""
    return MissingDependency(
        f"this integration needs {package}, which could not be imported ({exc}); run "
        f"`pip install 'embedbox[{extra}]'`"
    )
