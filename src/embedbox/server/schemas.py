"""Request and response bodies (pydantic) for the OpenAI-compatible and native APIs."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

TOKEN_IDS_MESSAGE = (
    "token-id arrays are not supported by this server (the model has its own tokenizer); "
    "send the text as a string or a list of strings"
)


class ErrorBody(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    """Every error: `{"error": {"message", "type", "param", "code"}}`, as the OpenAI API does."""

    error: ErrorBody


def _texts(value: Any) -> Any:
    """A string becomes a one-item list; token-id arrays get a clear error."""
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list):
        raise ValueError("must be a string or a list of strings")
    if any(isinstance(v, int | list) and not isinstance(v, bool) for v in value):
        raise ValueError(TOKEN_IDS_MESSAGE)
    return value


# ---- OpenAI-compatible -------------------------------------------------------------------
class EmbeddingsRequest(BaseModel):
    """`POST /v1/embeddings`, as in the OpenAI API (token-id arrays are refused)."""

    input: str | list[str] = Field(description="A text or a list of texts.")
    model: str | None = Field(None, description="A served model; the default when omitted.")
    encoding_format: Literal["float", "base64"] = Field(
        "float", description="`base64`: little-endian float32 bytes, base64-encoded."
    )
    dimensions: int | None = Field(
        None, ge=1, description="Keep the first N dimensions (Matryoshka), re-normalised."
    )
    user: str | None = Field(None, description="Accepted and ignored.")

    @field_validator("input", mode="before")
    @classmethod
    def _input(cls, value: Any) -> Any:
        return _texts(value)


class EmbeddingItem(BaseModel):
    object: Literal["embedding"] = "embedding"
    embedding: list[float] | str
    index: int


class Usage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingsResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[EmbeddingItem]
    model: str
    usage: Usage


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "embedbox"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


# ---- native ------------------------------------------------------------------------------
class EmbedRequest(BaseModel):
    """`POST /embed`."""

    model_config = ConfigDict(extra="forbid")

    texts: list[str] = Field(description="Texts to embed.")
    model: str | None = None
    input_type: Literal["query", "document"] | None = Field(
        None, description="Picks the model's query / document prompt, if it has one."
    )
    dimensions: int | None = Field(None, ge=1)
    encoding_format: Literal["float", "base64"] = "float"
    truncate: bool | None = Field(
        None,
        description="Over-long texts: true truncates (reported), false fails; "
        "default: the server's setting.",
    )

    @field_validator("texts", mode="before")
    @classmethod
    def _texts(cls, value: Any) -> Any:
        return _texts(value)


class EmbedResponse(BaseModel):
    model: str
    dim: int
    embeddings: list[list[float]] | list[str]
    token_counts: list[int]
    truncated: list[int] = Field(description="Indexes of texts cut to the model's maximum.")


class SimilarityRequest(BaseModel):
    """`POST /similarity`: every text of `a` against every text of `b` (or of `a`)."""

    model_config = ConfigDict(extra="forbid")

    a: list[str]
    b: list[str] | None = None
    model: str | None = None

    @field_validator("a", "b", mode="before")
    @classmethod
    def _texts(cls, value: Any) -> Any:
        return _texts(value) if value is not None else None


class SimilarityResponse(BaseModel):
    model: str
    metric: str
    scores: list[list[float]]


class Health(BaseModel):
    status: str


class Ready(BaseModel):
    ready: bool
    models: dict[str, str]


# ---- collections -------------------------------------------------------------------------
Metadata = dict[str, Any]


class CreateCollection(BaseModel):
    """`POST /collections`."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="1-64 of A-Z a-z 0-9 _ - . starting with a letter or digit.")
    model: str | None = Field(None, description="A served text model; the default when omitted.")


class AddItems(BaseModel):
    """`POST /collections/{name}/items` (add; ids generated when omitted) and `PUT` (upsert)."""

    model_config = ConfigDict(extra="forbid")

    texts: list[str]
    ids: list[str] | None = None
    metadatas: list[Metadata | None] | None = None


class ItemIds(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ids: list[str]


class DeleteItems(BaseModel):
    """Delete by `ids`, by a `where` filter, or both (`where: {}` deletes everything)."""

    model_config = ConfigDict(extra="forbid")

    ids: list[str] | None = None
    where: Metadata | None = None


class SearchRequest(BaseModel):
    """Give exactly one of `query` (a text), `queries` (texts: one hit list each, embedded in
    one pass), `vector` or `vectors` (the collection's dimension)."""

    model_config = ConfigDict(extra="forbid")

    query: str | None = None
    queries: list[str] | None = Field(None, min_length=1)
    vector: list[float] | None = Field(None, min_length=1)
    vectors: list[list[float]] | None = Field(None, min_length=1)
    k: int = Field(10, ge=1)
    where: Metadata | None = Field(None, description="Metadata filter, applied before ranking.")
    where_document: Metadata | None = Field(
        None, description='Text filter: {"$contains": "word"}, $not_contains, $and, $or.'
    )
    mode: Literal["semantic", "keyword", "hybrid"] = "semantic"
    include: list[Literal["text", "metadata"]] = Field(
        ["text", "metadata"], description="Hit fields to fill; the others come back empty."
    )


class RecommendRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    like: list[str] = Field(default_factory=list, description="Liked item ids.")
    unlike: list[str] = Field(default_factory=list)
    history: list[str] = Field(default_factory=list, description="Ids, oldest first.")
    exclude: list[str] = Field(default_factory=list, description="Ids never to recommend.")
    where: Metadata | None = None
    k: int = Field(10, ge=1)
    diversity: float | None = Field(None, ge=0, le=1, description="MMR lambda; None: relevance.")


class CollectionInfo(BaseModel):
    """A collection's settings and size (`path` only for read-write keys). In a listing, a
    collection that cannot be read has `error` instead."""

    model_config = ConfigDict(extra="allow")

    name: str
    model: str | None = None
    dim: int | None = None
    count: int | None = None
    path: str | None = None
    error: str | None = None


class CollectionList(BaseModel):
    collections: list[CollectionInfo]


class ItemOut(BaseModel):
    id: str
    text: str
    metadata: Metadata


class ItemsOut(BaseModel):
    items: list[ItemOut]


class WriteResult(BaseModel):
    ids: list[str]
    added: int
    updated: int = 0
    unchanged: int = 0


class Deleted(BaseModel):
    deleted: int


class HitOut(BaseModel):
    id: str
    score: float
    text: str
    metadata: Metadata
    parent_id: str | None = None
    span: list[int] | None = None
    chunk: int = 0


class SearchResponse(BaseModel):
    hits: list[HitOut]


class BatchSearchResponse(BaseModel):
    """For `queries` or `vectors`: one result per query, in order."""

    results: list[SearchResponse]


class RecommendResponse(BaseModel):
    items: list[HitOut]
