"""The HTTP server: OpenAI-compatible embeddings, the native API, micro-batching, keys, metrics."""

from embedbox.server.app import create_app
from embedbox.server.settings import ApiKey, ServerSettings

__all__ = ["ApiKey", "ServerSettings", "create_app"]
