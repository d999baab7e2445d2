"""Server configuration: one frozen dataclass, built by the CLI or by tests."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from embedbox.catalog import DEFAULT_IMAGE_MODEL, DEFAULT_TEXT_MODEL, DEFAULT_WORD_MODEL


@dataclass(frozen=True)
class ApiKey:
    """A Bearer key; read-only keys may embed and search but not write to collections."""

    key: str
    read_only: bool = False

    def __repr__(self) -> str:  # never print secrets
        return f"ApiKey(***, read_only={self.read_only})"


@dataclass(frozen=True)
class ServerSettings:
    """Everything `create_app` needs. Defaults are safe: loopback, no keys, modest limits."""

    host: str = "127.0.0.1"
    port: int = 8000
    models: tuple[str, ...] = (DEFAULT_TEXT_MODEL,)
    preload: bool = True  # load every model at start; False: each on first use
    lazy_models: tuple[str, ...] = ()  # loaded on first use even when preload is True
    compute: str = "auto"
    backend: str = "auto"  # auto | torch | openvino (see EmbedderOptions.backend)
    threads: int | None = None
    api_keys: tuple[ApiKey, ...] = field(default=(), repr=False)
    insecure_no_auth: bool = False  # allow a non-loopback bind without keys
    metrics_public: bool = False  # /metrics without a key even when keys are set
    # micro-batching
    batching: bool = True
    max_batch_tokens: int = 8192  # estimated tokens the batcher merges into one model call
    # Padded tokens per forward inside that call: the merged texts are sorted by length and cut
    # into forwards of about this size, so short texts are not padded to the longest one.
    batch_tokens: int = 512  # EmbedderOptions.batch_tokens of the served models
    max_wait_ms: float = 2.0
    max_queue: int = 256  # requests waiting per model before 503
    request_timeout_s: float = 60.0
    # limits
    max_body_bytes: int = 4 * 1024 * 1024
    max_inputs: int = 2048
    max_input_chars: int = 32_768
    truncate: bool = True  # over-long inputs: truncate (reported) or 400
    max_filter_depth: int = 8
    max_k: int = 1000
    data_dir: Path | None = None  # collections; None: the library default
    # words and images (/words/..., /images/...): loaded on first use; None turns them off
    word_model: str | None = DEFAULT_WORD_MODEL
    image_model: str | None = DEFAULT_IMAGE_MODEL
    max_images: int = 64  # images per request
    max_image_pixels: int = 40_000_000  # width x height of one decoded image

    @property
    def auth_enabled(self) -> bool:
        return bool(self.api_keys)

    @property
    def default_model(self) -> str:
        return self.models[0]

    def loads_at_start(self, model: str) -> bool:
        """Whether `model` (as listed in `models`) is loaded at start rather than on first use."""
        return self.preload and model not in self.lazy_models

    def check(self) -> None:
        """Raise `ValueError` for settings that cannot work or are unsafe."""
        if not self.models:
            raise ValueError("serve at least one model")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be 0..65535, got {self.port}")
        for name, value in (
            ("max_batch_tokens", self.max_batch_tokens),
            ("batch_tokens", self.batch_tokens),
            ("max_queue", self.max_queue),
            ("max_body_bytes", self.max_body_bytes),
            ("max_inputs", self.max_inputs),
            ("max_input_chars", self.max_input_chars),
            ("max_filter_depth", self.max_filter_depth),
            ("max_k", self.max_k),
            ("max_images", self.max_images),
            ("max_image_pixels", self.max_image_pixels),
        ):
            if value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        unknown = [m for m in self.lazy_models if m not in self.models]
        if unknown:
            raise ValueError(f"lazy_models must be served models; not in models: {unknown}")
        if self.max_wait_ms < 0 or self.request_timeout_s <= 0:
            raise ValueError("max_wait_ms must be >= 0 and request_timeout_s > 0")
        if not is_loopback(self.host) and not self.api_keys and not self.insecure_no_auth:
            raise ValueError(
                f"refusing to listen on {self.host} without API keys: anyone on the network could "
                "use it. Pass --api-key / --api-key-file (or EMBEDBOX_API_KEYS), bind 127.0.0.1, "
                "or pass --insecure-no-auth if this is really intended"
            )


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses (127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
