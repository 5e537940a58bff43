"""Configuration, one class per subsystem, all read from ``CONTEXTD_*`` variables.

Only the composition root (``container.py``) and the CLI read these.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from contextd_mcp.paths import default_data_dir

DEFAULT_MODEL = "contextd/all-MiniLM-L6-v2-int8"


class StoreSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CONTEXTD_")

    data_dir: Path = Field(default_factory=default_data_dir)
    qdrant_url: str | None = None
    qdrant_api_key: str | None = None
    # Only for tests of the qdrant-client adapter: its local mode, a folder.
    qdrant_path: Path | None = None

    @model_validator(mode="after")
    def _one_backend(self) -> "StoreSettings":
        if self.qdrant_url and self.qdrant_path:
            raise ValueError("set CONTEXTD_QDRANT_URL or CONTEXTD_QDRANT_PATH, not both")
        return self


class EmbeddingSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CONTEXTD_EMBEDDING_")

    # The default ships with the package; any fastembed model name or a local
    # directory holding model.onnx + tokenizer files can be configured instead.
    model: str = DEFAULT_MODEL
    cache_dir: Path | None = None


class ScopeSettings(BaseSettings):
    """Explicit scope; unset parts are derived from the working directory."""

    model_config = SettingsConfigDict(env_prefix="CONTEXTD_")

    tenant: str | None = None
    team: str | None = None
    project: str | None = None


class LimitSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CONTEXTD_")

    response_max_tokens: int = Field(default=4000, ge=256, le=32000)
    request_max_bytes: int = Field(default=1 << 20, ge=4096, le=16 << 20)


class AuthSettings(BaseSettings):
    """Who may use the HTTP/SSE transports (the unix socket is owner-only by file mode)."""

    model_config = SettingsConfigDict(env_prefix="CONTEXTD_")

    # Default: tokens.json in the data directory (see adapters/token_store.py).
    tokens_file: Path | None = None
    # Serve HTTP on loopback without tokens, every caller acting as the daemon's operator.
    http_allow_local_noauth: bool = False
    # Host header values clients use to reach a non-loopback bind (DNS-rebinding protection).
    http_allowed_hosts: list[str] = Field(default_factory=list)
