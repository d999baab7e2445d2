"""The HTTP server: OpenAI-compatible embeddings, the native API, micro-batching, keys, metrics.

`create_app` is imported on first use, so reading `ServerSettings` (the CLI does, for its
defaults) does not load the web framework or a model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from embedbox.server.settings import ApiKey, ServerSettings

if TYPE_CHECKING:
    from embedbox.server.app import create_app

__all__ = ["ApiKey", "ServerSettings", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from embedbox.server.app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
