"""Turning a registry's error answer into sneaker's error tree. Pure logic, no I/O.

The distribution spec's error body is ``{"errors": [{"code", "message", "detail"}]}``.
Every message names the registry and the repository (and the tag, digest or blob
when there is one); URLs are redacted; no credential ever appears.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NoReturn

from ..errors import AuthError, IntegrityError, NotFound, RateLimited, RegistryError, summarize
from .credentials import Credential
from .headers import rate_limit_summary
from .redact import redact_url

__all__ = ["Subject", "parse_error_body", "raise_for_status"]

_MAX_MESSAGE = 300
_INTEGRITY_CODES = frozenset({"DIGEST_INVALID", "SIZE_INVALID", "BLOB_UPLOAD_INVALID"})


@dataclass(frozen=True)
class Subject:
    """What a request was about, for messages: ``kind`` is manifest, blob, upload, tags,
    catalog or registry; ``identifier`` a tag or digest."""

    registry: str
    repository: str | None = None
    kind: str = "registry"
    identifier: str | None = None

    @property
    def where(self) -> str:
        if self.repository:
            return f"repository {self.repository} on {self.registry}"
        return self.registry

    @property
    def name(self) -> str:
        return f"{self.registry}/{self.repository}" if self.repository else self.registry

    def describe(self) -> str:
        """``manifest latest``, ``blob sha256:…``: the thing itself, without its place."""
        if self.identifier:
            noun = "manifest" if self.kind == "manifest" else self.kind
            if self.kind == "manifest" and ":" not in self.identifier:
                noun = "tag"
            return f"{noun} {self.identifier}"
        return self.kind


def parse_error_body(body: bytes) -> tuple[tuple[str, ...], str]:
    """The error codes and a one-line message from a distribution error body."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        text = body[:_MAX_MESSAGE].decode("utf-8", "replace").strip()
        first = text.splitlines()[0] if text else ""
        return (), first if "<" not in first else ""
    errors = data.get("errors") if isinstance(data, dict) else None
    if not isinstance(errors, list):
        return (), ""
    codes: list[str] = []
    messages: list[str] = []
    for item in errors:
        if not isinstance(item, dict):
            continue
        code = item.get("code")
        if isinstance(code, str) and code:
            codes.append(code.upper())
        message = item.get("message")
        if isinstance(message, str) and message:
            messages.append(message.strip())
    text = "; ".join(dict.fromkeys(messages))
    return tuple(codes), text[:_MAX_MESSAGE]


def _login_hint(registry: str) -> str:
    return f"run 'sneaker login {registry}' or pass --username with --password-stdin"


def raise_for_status(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    subject: Subject,
    method: str,
    url: str,
    credential: Credential | None = None,
    attempts: int = 1,
) -> NoReturn:
    """Raise the error that ``status`` (>= 400, or unexpected) means for ``subject``."""
    codes, message = parse_error_body(body)
    registry = subject.registry
    anonymous = credential is None or credential.is_empty
    who = ""
    if credential is not None and not anonymous:
        who = f" for user {credential.username!r}" if credential.username else " for the token"
    if status in (401, 403):
        if anonymous:
            raise AuthError(
                f"authentication required for {subject.where}",
                hint=_login_hint(registry)
                + (" (or the repository does not exist)" if subject.repository else ""),
            )
        source = credential.source if credential is not None and credential.source else "config"
        raise AuthError(
            f"access denied to {subject.where}{who}",
            hint=f"check the credentials (from {source}) and the account's access rights"
            + (f"; the registry said: {message}" if message else ""),
        )
    if status == 404:
        if "NAME_UNKNOWN" in codes and subject.repository:
            raise NotFound(f"repository {subject.name} not found")
        if subject.kind in ("manifest", "blob") and subject.identifier:
            raise NotFound(f"{subject.describe()} not found in {subject.name}")
        if subject.kind == "upload":
            raise NotFound(
                f"upload session for {subject.describe()} in {subject.name} not found "
                "(it expired or was cancelled)"
            )
        if subject.repository:
            raise NotFound(f"repository {subject.name} not found")
        raise RegistryError(
            f"{registry} answered HTTP 404 to {method} {redact_url(url)}"
            + (f": {message}" if message else ""),
            status=status,
            codes=codes,
        )
    if status == 429:
        limits = rate_limit_summary(headers)
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        raise RateLimited(
            f"{registry} rate-limited {method} {redact_url(url)}: HTTP 429{tries}"
            + (f" ({limits})" if limits else ""),
            hint="wait and try again, or log in for a higher limit",
        )
    if codes and set(codes) <= _INTEGRITY_CODES:
        raise IntegrityError(
            f"{registry} rejected {subject.describe()} in {subject.name}: "
            f"{message or summarize(codes)}"
        )
    tries = f" after {attempts} attempts" if attempts > 1 else ""
    detail = message or ""
    if codes:
        detail = f"{detail} ({summarize(codes)})" if detail else summarize(codes)
    raise RegistryError(
        f"{registry} answered HTTP {status} to {method} {redact_url(url)}{tries}"
        + (f": {detail}" if detail else ""),
        status=status,
        codes=codes,
    )
