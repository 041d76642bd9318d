"""The registry client: distribution API, auth flow, credentials, transport.

Everything public is re-exported here; the modules are small and named for
what they do (``challenge``, ``auth``, ``credentials``, ``transport``, ``client``).
"""

from __future__ import annotations

from .auth import Authenticator, Token
from .challenge import (
    Challenge,
    Scope,
    merge_scopes,
    parse_challenges,
    parse_scopes,
    scopes_for_mount,
    scopes_for_pull,
    scopes_for_push,
)
from .client import DEFAULT_CHUNK_SIZE, BlobResponse, RegistryClient
from .credentials import (
    Credential,
    erase_credential,
    find_credential,
    normalize_registry,
    server_url_for,
    store_credential,
)
from .headers import parse_content_range
from .options import RegistryOptions
from .redact import redact_url
from .retry import parse_retry_after

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "Authenticator",
    "BlobResponse",
    "Challenge",
    "Credential",
    "RegistryClient",
    "RegistryOptions",
    "Scope",
    "Token",
    "erase_credential",
    "find_credential",
    "merge_scopes",
    "normalize_registry",
    "parse_challenges",
    "parse_content_range",
    "parse_retry_after",
    "parse_scopes",
    "redact_url",
    "scopes_for_mount",
    "scopes_for_pull",
    "scopes_for_push",
    "server_url_for",
    "store_credential",
]
