"""Native routes: `/embed`, `/similarity`, and the operational `/health`, `/ready`, `/metrics`."""

from __future__ import annotations

import numpy as np
from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from embedbox.server.auth import authorize, require_read
from embedbox.server.schemas import (
    EmbedRequest,
    EmbedResponse,
    Health,
    Ready,
    SimilarityRequest,
    SimilarityResponse,
)
from embedbox.server.service import (
    ERRORS,
    embed_texts,
    json_response,
    pool_of,
    settings_of,
    vectors_json,
)
from embedbox.similarity import Metric, similarity_matrix

router = APIRouter(tags=["native"], dependencies=[Depends(require_read)])
ops = APIRouter(tags=["operations"])


@router.post("/embed", response_model=EmbedResponse, responses=ERRORS)
async def embed(body: EmbedRequest, request: Request) -> Response:
    """Embed texts; reports token counts and which texts were truncated."""
    done = await embed_texts(
        request,
        body.texts,
        body.model,
        param="texts",
        input_type=body.input_type,
        dimensions=body.dimensions,
        truncate=body.truncate,
    )
    r = done.result
    payload = {
        "model": done.model,
        "dim": int(r.vectors.shape[1]),
        "token_counts": r.token_counts,
        "truncated": r.truncated,
    }
    rows = ",".join(vectors_json(r.vectors, body.encoding_format))
    return json_response(payload, {"embeddings": f"[{rows}]"})


@router.post("/similarity", response_model=SimilarityResponse, responses=ERRORS)
async def similarity(body: SimilarityRequest, request: Request) -> SimilarityResponse:
    """Similarity matrix (the model's own function, cosine for most) between `a` and `b`."""
    a = await embed_texts(request, body.a, body.model, param="a")
    vb = a.result.vectors
    if body.b is not None:
        vb = (await embed_texts(request, body.b, body.model, param="b")).result.vectors
    metric: Metric = "dot" if a.embedder.info.similarity_fn == "dot" else "cosine"
    scores = similarity_matrix(a.result.vectors, vb, metric)
    return SimilarityResponse(
        model=a.model, metric=metric, scores=np.asarray(scores, np.float64).tolist()
    )


@ops.get("/health", response_model=Health)
async def health() -> Health:
    """Liveness: the process answers."""
    return Health(status="ok")


@ops.get("/ready", response_model=Ready, responses={503: {"model": Ready}})
async def ready(request: Request) -> JSONResponse:
    """Readiness: models loaded and their workers running (503 otherwise)."""
    ok, state = pool_of(request).readiness()
    return JSONResponse(Ready(ready=ok, models=state).model_dump(), status_code=200 if ok else 503)


@ops.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}}, 401: ERRORS[401]},
)
async def metrics(request: Request) -> Response:
    """Prometheus metrics (needs a key when keys are configured, unless metrics_public)."""
    if not settings_of(request).metrics_public:
        authorize(request, write=False)
    body = request.app.state.metrics.render()
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")
