"""OpenAI-compatible routes: `POST /v1/embeddings`, `GET /v1/models`."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

from embedbox.server.auth import require_read
from embedbox.server.schemas import EmbeddingsRequest, EmbeddingsResponse, ModelCard, ModelList
from embedbox.server.service import ERRORS, embed_texts, json_response, pool_of, vectors_json

router = APIRouter(prefix="/v1", tags=["OpenAI-compatible"], dependencies=[Depends(require_read)])


@router.post("/embeddings", response_model=EmbeddingsResponse, responses=ERRORS)
async def create_embeddings(body: EmbeddingsRequest, request: Request) -> Response:
    """Embeddings as the OpenAI API returns them; works with the official `openai` client.

    Texts over the model's maximum are truncated (listed in the `X-Embedbox-Truncated` header)
    unless the server runs with truncation off, in which case they are a 400.
    """
    texts = body.input if isinstance(body.input, list) else [body.input]
    done = await embed_texts(request, texts, body.model, dimensions=body.dimensions)
    result = done.result
    # Built as text: no pydantic pass over the response, vectors printed by the fast path.
    data = ",".join(
        f'{{"object":"embedding","embedding":{vec},"index":{i}}}'
        for i, vec in enumerate(vectors_json(result.vectors, body.encoding_format))
    )
    tokens = result.total_tokens
    payload = {
        "object": "list",
        "model": done.model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
    headers = (
        {"X-Embedbox-Truncated": ",".join(map(str, result.truncated))} if result.truncated else None
    )
    return json_response(payload, {"data": f"[{data}]"}, headers=headers)


@router.get("/models", response_model=ModelList, responses=ERRORS)
async def list_models(request: Request) -> ModelList:
    """The models this server serves (the first is the default)."""
    return ModelList(data=[ModelCard(id=name) for name in pool_of(request).names])
