"""``RegistryClient``: the distribution API of one registry, on the transport and auth flow.

One client per registry, shared by threads: the connection pools, the token
cache and the learnt scheme are per client; nothing here holds a blob in memory.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO
from urllib.parse import quote, urljoin

import urllib3
from urllib3.exceptions import HTTPError, ReadTimeoutError

from ..errors import (
    IntegrityError,
    InvalidDigest,
    ManifestInvalid,
    NetworkError,
    RegistryError,
    TooSlow,
)
from ..image import mediatypes as mt
from ..image.digest import Digest
from ..image.model import MAX_MANIFEST_BYTES, Descriptor, Index, parse_manifest, sniff_media_type
from ..image.reference import DOCKER_HUB, DOCKER_HUB_API_HOST
from ..util.closing import Closing
from .auth import Authenticator
from .challenge import Scope, scopes_for_mount, scopes_for_pull, scopes_for_push
from .connect_failures import exception_chain
from .credentials import Credential, find_credential
from .headers import append_query, media_type_of, next_link, parse_content_range
from .lowspeed import DEFAULT_LOW_SPEED, LowSpeedLimit, SpeedWatch
from .messages import Body, Request
from .options import DEFAULT_OPTIONS, RegistryOptions
from .problems import Subject, raise_for_status
from .redact import redact_url
from .transport import HttpTransport, Sent, Transport, describe_exception, read_capped, release

if TYPE_CHECKING:
    from .reader import RegistryReader

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "BlobResponse",
    "Referrers",
    "RegistryClient",
    "RegistryOptions",
    "StoredManifest",
]

log = logging.getLogger(__name__)

DEFAULT_CHUNK_SIZE = 64 * 1024 * 1024
_ERROR_BODY_LIMIT = 64 * 1024
_GENERIC_TYPES = frozenset({"", "application/json", "text/plain", "application/octet-stream"})
_MAX_PAGES = 10_000


class BlobResponse(Closing):
    """A blob on the wire. A context manager: leaving it releases the connection.

    ``iter_chunks`` yields the bytes exactly as sent (no content decoding), as they
    arrive, and raises :class:`NetworkError` when the connection is cut, and
    :class:`TooSlow` when they come slower than ``low_speed``
    (:mod:`sneaker.registry.lowspeed`).
    """

    def __init__(
        self, sent: Sent, subject: Subject, low_speed: LowSpeedLimit = DEFAULT_LOW_SPEED
    ) -> None:
        self._sent = sent
        self._subject = subject
        self._low_speed = low_speed
        self._closed = False
        self.status: int = sent.status
        self.headers: Mapping[str, str] = sent.headers
        self.content_range: tuple[int, int, int | None] | None = parse_content_range(
            self.headers.get("Content-Range")
        )
        length = self.headers.get("Content-Length", "")
        self.content_length: int | None = int(length) if length.isdigit() else None
        self.validator: str | None = _validator(self.headers)
        self.url = redact_url(sent.url)
        self.received = 0

    def iter_chunks(self, size: int = 1 << 20) -> Iterator[bytes]:
        """The body in pieces of at most ``size`` bytes: what one read brought."""
        response = self._sent.response
        watch: SpeedWatch | None = None
        silence: float | None = None
        if self._low_speed.active:
            watch = SpeedWatch(self._low_speed, time.monotonic())
            silence = _limit_silence(response, self._low_speed.seconds)
        while True:
            try:
                # one read: what arrived, so a trickle is seen as it trickles
                data = response.read1(size, decode_content=False)
            except (HTTPError, OSError, http.client.HTTPException) as exc:
                self.close()
                if silence is not None and _timed_out(exc):
                    raise self._too_slow(f"nothing arrived for {silence:g} s") from exc
                raise NetworkError(
                    f"connection cut while reading {self._subject.describe()} from "
                    f"{self._subject.name} after {self.received} bytes: "
                    f"{describe_exception(exc)}"
                ) from exc
            if not data:
                return
            self.received += len(data)
            if watch is not None:
                slow = watch.arrived(len(data), time.monotonic())
                if slow is not None:
                    self.close()
                    raise self._too_slow(slow)
            yield data

    def _too_slow(self, what: str) -> TooSlow:
        return TooSlow(
            f"{self._subject.describe()} from {self._subject.name} came too slowly after "
            f"{self.received} bytes: {what}",
            hint="on a link this slow, lower --low-speed-limit (0 turns it off) or raise "
            "--low-speed-time",
        )

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            release(self._sent.response)

    def __repr__(self) -> str:
        return f"BlobResponse({self.status} {self.url})"


def _limit_silence(response: urllib3.BaseHTTPResponse, seconds: float) -> float | None:
    """Make a read of the body give up after ``seconds`` without a byte (the socket's read
    timeout, when it is longer; the next request on the connection sets it again). The
    silence a read now waits out at most; None when the socket cannot be reached."""
    sock = getattr(getattr(response, "connection", None), "sock", None)
    if sock is None:
        return None
    current = sock.gettimeout()
    if current is None or current > seconds:
        sock.settimeout(seconds)
        return seconds
    return float(current)


def _timed_out(exc: BaseException) -> bool:
    return any(isinstance(e, (ReadTimeoutError, TimeoutError)) for e in exception_chain(exc))


@dataclass(frozen=True)
class StoredManifest:
    """A manifest a registry stored: its digest, and the ``subject`` digest the registry
    said it processed (``OCI-Subject``: it lists the manifest as a referrer), None if none."""

    digest: Digest
    subject: Digest | None = None


@dataclass(frozen=True)
class Referrers:
    """A registry's referrers list of one digest (its referrers API's answer): the listed
    descriptors, and whether the registry applied the ``artifactType`` filter asked for."""

    manifests: tuple[Descriptor, ...]
    filtered: bool = False


def _read_document(
    sent: Sent, subject: Subject, low_speed: LowSpeedLimit = DEFAULT_LOW_SPEED
) -> tuple[bytes, str]:
    """A manifest-sized body (at most 4 MiB, all of it) and its media type."""
    with contextlib.closing(BlobResponse(sent, subject, low_speed)) as response:
        if response.content_length is not None and response.content_length > MAX_MANIFEST_BYTES:
            raise ManifestInvalid(
                f"{subject.describe()} of {subject.name} is {response.content_length} bytes, "
                "larger than the 4 MiB limit"
            )
        parts: list[bytes] = []
        total = 0
        for chunk in response.iter_chunks(256 * 1024):
            total += len(chunk)
            if total > MAX_MANIFEST_BYTES:
                raise ManifestInvalid(
                    f"{subject.describe()} of {subject.name} is larger than the 4 MiB limit"
                )
            parts.append(chunk)
        if response.content_length is not None and total != response.content_length:
            raise NetworkError(
                f"{subject.describe()} of {subject.name}: got {total} of "
                f"{response.content_length} bytes"
            )
        return b"".join(parts), media_type_of(response.headers.get("Content-Type"))


def _validator(headers: Mapping[str, str]) -> str | None:
    """A strong ETag (If-Range refuses weak ones), else Last-Modified."""
    etag = headers.get("ETag")
    if etag and not etag.startswith("W/"):
        return etag
    return headers.get("Last-Modified") or None


def _as_digest(identifier: str) -> Digest | None:
    if ":" not in identifier:
        return None
    try:
        return Digest.parse(identifier)
    except InvalidDigest:
        return None


class _ChunkReader:
    """Reads exactly ``size`` bytes of ``stream`` for one request body, hashing them.

    Seekable back to its start when the stream is (for a retry with a fresh token).
    Not ``util.streams.HashingReader``: it stops at one chunk's length, fails when the
    data ends early, and rewinds its hash state with the stream.
    """

    def __init__(self, stream: BinaryIO, size: int, hasher: Any, what: str) -> None:
        self._stream = stream
        self._size = size
        self._base_hasher = hasher
        self.hasher = hasher.copy()
        self._what = what
        self.sent = 0
        try:
            self._start: int | None = stream.tell()
        except (OSError, AttributeError, ValueError):
            self._start = None

    def read(self, amount: int = -1) -> bytes:
        left = self._size - self.sent
        if left <= 0:
            return b""
        want = left if amount is None or amount < 0 else min(amount, left)
        data = self._stream.read(want)
        if not data:
            raise IntegrityError(
                f"{self._what}: the data ended after {self.sent} of {self._size} bytes"
            )
        self.sent += len(data)
        self.hasher.update(data)
        return data

    def tell(self) -> int:
        if self._start is None:
            raise OSError("not seekable")
        return self.sent

    def seek(self, offset: int, whence: int = 0) -> int:
        if self._start is None or offset != 0 or whence != 0:
            raise OSError("can only rewind to the start")
        self._stream.seek(self._start)
        self.sent = 0
        self.hasher = self._base_hasher.copy()
        return 0


class RegistryClient(Closing):
    """The distribution API of one registry (``docker.io`` or ``host[:port]``). Thread-safe.

    Requests go through ``transport`` (default: a :class:`Transport` to the
    registry's API host, built from ``options``); tests hand in one that answers
    from memory.
    """

    def __init__(
        self,
        registry: str,
        options: RegistryOptions = DEFAULT_OPTIONS,
        *,
        env: Mapping[str, str] | None = None,
        transport: HttpTransport | None = None,
    ) -> None:
        self.registry = registry
        self.options = options
        self.api_host = DOCKER_HUB_API_HOST if registry == DOCKER_HUB else registry
        self._env = env
        self._credential_lock = threading.Lock()
        self._credentials: dict[str | None, Credential | None] = {}
        self.transport: HttpTransport = transport or Transport(
            self.api_host, options, env=env, name=registry
        )
        self.auth = Authenticator(registry, self.credential, api_host=self.api_host)

    # -- plumbing -------------------------------------------------------------------------

    def credential(self, repository: str | None = None) -> Credential | None:
        """The credential for ``repository`` (None: the registry's own), looked up on first
        need (anonymous pulls never ask): a namespace may have credentials of its own."""
        with self._credential_lock:
            if repository not in self._credentials:
                self._credentials[repository] = find_credential(
                    self.registry,
                    repository=repository,
                    username=self.options.username,
                    password=self.options.password,
                    docker_config=self.options.docker_config,
                    authfile=self.options.authfile,
                    helpers=self.options.credential_helpers,
                    env=self._env,
                )
            return self._credentials[repository]

    def _send(
        self,
        method: str,
        url: str,
        scopes: Sequence[Scope],
        subject: Subject,
        *,
        headers: Mapping[str, str] | None = None,
        body: Body = None,
        ok: Sequence[int] = (200,),
        missing_ok: bool = False,
    ) -> Sent:
        """One API call with auth; raises the mapped error unless the status is in ``ok``."""
        request = Request(method, url, dict(headers or {}), body)
        sent = self.transport.perform(self.auth.flow(request, scopes))
        if sent.status in ok or (missing_ok and sent.status == 404):
            return sent
        error_body = read_capped(sent.response, _ERROR_BODY_LIMIT)
        raise_for_status(
            sent.status,
            sent.headers,
            error_body,
            subject=subject,
            method=method,
            url=sent.url,
            credential=self._credentials.get(subject.repository),
            attempts=sent.attempts,
        )

    def _url(self, path: str) -> str:
        return self.transport.url(path)

    @staticmethod
    def _repo_path(repository: str) -> str:
        return quote(repository, safe="/")

    # -- manifests ------------------------------------------------------------------------

    def get_manifest(
        self, repository: str, identifier: str, accept: Sequence[str] = mt.MANIFEST_ACCEPT
    ) -> tuple[bytes, str]:
        """The raw manifest and its media type; verified when ``identifier`` is a digest."""
        subject = Subject(self.registry, repository, "manifest", identifier)
        url = self._url(
            f"/v2/{self._repo_path(repository)}/manifests/{quote(identifier, safe=':')}"
        )
        sent = self._send(
            "GET", url, scopes_for_pull(repository), subject, headers={"Accept": ", ".join(accept)}
        )
        raw, media_type = _read_document(sent, subject, self.options.low_speed)
        expected = _as_digest(identifier)
        if expected is not None:
            actual = Digest.of_bytes(raw, expected.algorithm)
            if actual != expected:
                raise IntegrityError(
                    f"digest mismatch for manifest {identifier} of {subject.name}: "
                    f"the registry sent content hashing to {actual}"
                )
        if media_type in _GENERIC_TYPES:
            media_type = _sniff(raw) or media_type
        return raw, media_type

    def head_manifest(
        self, repository: str, identifier: str, accept: Sequence[str] = mt.MANIFEST_ACCEPT
    ) -> Descriptor | None:
        """The manifest's descriptor without its body; None when it does not exist."""
        subject = Subject(self.registry, repository, "manifest", identifier)
        url = self._url(
            f"/v2/{self._repo_path(repository)}/manifests/{quote(identifier, safe=':')}"
        )
        sent = self._send(
            "HEAD",
            url,
            scopes_for_pull(repository),
            subject,
            headers={"Accept": ", ".join(accept)},
            missing_ok=True,
        )
        headers = sent.headers
        release(sent.response)
        if sent.status == 404:
            return None
        media_type = media_type_of(headers.get("Content-Type"))
        digest_text = headers.get("Docker-Content-Digest", "")
        length = headers.get("Content-Length", "")
        digest = _as_digest(digest_text)
        expected = _as_digest(identifier)
        if expected is not None and digest is not None and digest != expected:
            raise IntegrityError(
                f"{subject.name}: asked for manifest {identifier}, the registry described {digest}"
            )
        digest = digest or expected
        if digest is None or not length.isdigit() or media_type in _GENERIC_TYPES:
            # A registry that does not say enough on HEAD: fetch the manifest instead.
            raw, media_type = self.get_manifest(repository, identifier, accept)
            return Descriptor(media_type, expected or Digest.of_bytes(raw), len(raw))
        return Descriptor(media_type, digest, int(length))

    def put_manifest(self, repository: str, reference: str, raw: bytes, media_type: str) -> Digest:
        """Upload a manifest under a tag or digest; return its digest."""
        return self.store_manifest(repository, reference, raw, media_type).digest

    def store_manifest(
        self, repository: str, reference: str, raw: bytes, media_type: str
    ) -> StoredManifest:
        """:meth:`put_manifest`, also saying whether the registry processed the manifest's
        ``subject`` (its ``OCI-Subject`` answer: it has the referrers API)."""
        subject = Subject(self.registry, repository, "manifest", reference)
        url = self._url(f"/v2/{self._repo_path(repository)}/manifests/{quote(reference, safe=':')}")
        digest = Digest.of_bytes(raw)
        sent = self._send(
            "PUT",
            url,
            scopes_for_push(repository),
            subject,
            headers={"Content-Type": media_type, "Content-Length": str(len(raw))},
            body=raw,
            ok=(200, 201, 202),
        )
        answered = _as_digest(sent.headers.get("Docker-Content-Digest", ""))
        processed = _as_digest(sent.headers.get("OCI-Subject", ""))
        release(sent.response)
        if answered is not None and answered.algorithm == digest.algorithm and answered != digest:
            raise IntegrityError(
                f"{self.registry} stored manifest {reference} of {repository} as {answered}, "
                f"but its content hashes to {digest}"
            )
        return StoredManifest(digest, processed)

    # -- referrers ------------------------------------------------------------------------

    def referrers(
        self, repository: str, digest: Digest, artifact_type: str | None = None
    ) -> Referrers | None:
        """What ``GET /v2/NAME/referrers/DIGEST`` lists (every page), or None when the registry
        has no referrers API (it answers 404, 400, 405 or 406, or with something that is no OCI
        index, as distribution 2.8's plain-text ``404 page not found``): the caller falls back
        to the tag schema then. ``artifact_type`` asks the registry to filter; whether it did
        is :attr:`Referrers.filtered` (else the caller filters)."""
        subject = Subject(self.registry, repository, "referrers", str(digest))
        query = f"?artifactType={quote(artifact_type, safe='')}" if artifact_type else ""
        url: str | None = self._url(f"/v2/{self._repo_path(repository)}/referrers/{digest}{query}")
        found: list[Descriptor] = []
        filtered = artifact_type is not None
        seen: set[str] = set()
        while url is not None and url not in seen and len(seen) < _MAX_PAGES:
            seen.add(url)
            sent = self._send(
                "GET",
                url,
                scopes_for_pull(repository),
                subject,
                headers={"Accept": mt.OCI_INDEX},
                ok=(200, 400, 404, 405, 406),
            )
            kind = media_type_of(sent.headers.get("Content-Type"))
            if sent.status != 200 or kind != mt.OCI_INDEX:
                release(sent.response)
                if seen == {url}:
                    return None  # no referrers API
                raise RegistryError(
                    f"{self.registry} answered page {len(seen)} of the referrers of {digest} in "
                    f"{repository} with {sent.status} {kind or 'no content type'}",
                    status=sent.status,
                )
            raw, _ = _read_document(sent, subject, self.options.low_speed)
            page = parse_manifest(raw, kind, where=f"referrers of {digest} in {subject.name}")
            if not isinstance(page, Index):
                raise ManifestInvalid(f"{subject.name}: the referrers of {digest} are no index")
            found.extend(page.manifests)
            applied = sent.headers.get("OCI-Filters-Applied", "")
            filtered = filtered and "artifacttype" in applied.replace(" ", "").lower().split(",")
            url = next_link(sent.headers.get("Link"), sent.url)
        return Referrers(tuple(found), filtered)

    # -- blobs ----------------------------------------------------------------------------

    def open_blob(
        self,
        repository: str,
        digest: Digest,
        offset: int = 0,
        validator: str | None = None,
    ) -> BlobResponse:
        """GET a blob (following redirects). With ``offset`` > 0, ask for the rest only.

        The answer is 200 (the whole blob: a resume must start over) or 206 (from
        ``offset``; ``content_range`` says which bytes).
        """
        subject = Subject(self.registry, repository, "blob", str(digest))
        url = self._url(f"/v2/{self._repo_path(repository)}/blobs/{digest}")
        headers: dict[str, str] = {}
        if offset > 0:
            headers["Range"] = f"bytes={offset}-"
            if validator:
                headers["If-Range"] = validator
        sent = self._send(
            "GET", url, scopes_for_pull(repository), subject, headers=headers, ok=(200, 206)
        )
        response = BlobResponse(sent, subject, self.options.low_speed)
        if response.status == 206 and (
            response.content_range is None or response.content_range[0] != offset
        ):
            response.close()
            raise RegistryError(
                f"{self.registry} answered a range request for {subject.describe()} from "
                f"byte {offset} with Content-Range "
                f"{response.headers.get('Content-Range')!r}",
                status=206,
            )
        return response

    def reject_blob(
        self, repository: str, digest: Digest, error: IntegrityError
    ) -> IntegrityError | None:
        """The bytes of blob ``digest`` read from :meth:`open_blob` do not match it (``error``).

        The error to raise, or None when the next :meth:`open_blob` asks another
        source (a :class:`~sneaker.registry.mirrors.MirroringClient` moving on to its
        next endpoint). One registry has no other source: always ``error``.
        """
        return error

    def blob_exists(self, repository: str, digest: Digest) -> int | None:
        """The blob's size when the repository has it, else None."""
        subject = Subject(self.registry, repository, "blob", str(digest))
        url = self._url(f"/v2/{self._repo_path(repository)}/blobs/{digest}")
        sent = self._send("HEAD", url, scopes_for_pull(repository), subject, missing_ok=True)
        headers = sent.headers
        release(sent.response)
        if sent.status == 404:
            return None
        length = headers.get("Content-Length", "")
        return int(length) if length.isdigit() else 0

    def mount_blob(self, repository: str, digest: Digest, from_repository: str) -> bool:
        """Ask the registry to link a blob from another repository; True when it did (201)."""
        subject = Subject(self.registry, repository, "blob", str(digest))
        query = f"mount={quote(str(digest), safe=':')}&from={quote(from_repository, safe='/')}"
        url = self._url(f"/v2/{self._repo_path(repository)}/blobs/uploads/?{query}")
        sent = self._send(
            "POST",
            url,
            scopes_for_mount(repository, from_repository),
            subject,
            headers={"Content-Length": "0"},
            ok=(201, 202),
        )
        location = sent.headers.get("Location")
        release(sent.response)
        if sent.status == 201:
            return True
        if location:  # an upload session was opened instead: close it, politely
            with contextlib.suppress(Exception):
                cancel = self._send(
                    "DELETE",
                    urljoin(sent.url, location),
                    scopes_for_push(repository),
                    Subject(self.registry, repository, "upload", str(digest)),
                    ok=(200, 202, 204, 404),
                )
                release(cancel.response)
        return False

    def upload_blob(
        self,
        repository: str,
        desc: Descriptor,
        stream: BinaryIO,
        *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
    ) -> None:
        """Upload ``desc.size`` bytes of ``stream`` as blob ``desc.digest``.

        POST opens a session; a blob of at most ``chunk_size`` bytes goes in one PUT,
        a larger one in PATCH chunks (``Content-Range: start-end``) closed by a PUT
        carrying the digest. Checked against the descriptor before it is committed.
        """
        if chunk_size <= 0:
            raise ValueError("chunk_size must be positive")
        scopes = scopes_for_push(repository)
        subject = Subject(self.registry, repository, "blob", str(desc.digest))
        upload_subject = Subject(self.registry, repository, "upload", str(desc.digest))
        start_url = self._url(f"/v2/{self._repo_path(repository)}/blobs/uploads/")
        sent = self._send(
            "POST", start_url, scopes, subject, headers={"Content-Length": "0"}, ok=(202,)
        )
        location = self._location(sent, start_url)
        hasher = desc.digest.hasher()
        digest_query = f"digest={quote(str(desc.digest), safe=':')}"
        octets = {"Content-Type": "application/octet-stream"}
        if desc.size <= chunk_size:
            reader = _ChunkReader(stream, desc.size, hasher, str(desc.digest))
            sent = self._send(
                "PUT",
                append_query(location, digest_query),
                scopes,
                upload_subject,
                headers={**octets, "Content-Length": str(desc.size)},
                body=reader,
                ok=(201, 204),
            )
            self._check_committed(sent, desc, reader.hasher, subject)
            return
        offset = 0
        while offset < desc.size:
            count = min(chunk_size, desc.size - offset)
            reader = _ChunkReader(stream, count, hasher, str(desc.digest))
            sent = self._send(
                "PATCH",
                location,
                scopes,
                upload_subject,
                headers={
                    **octets,
                    "Content-Length": str(count),
                    "Content-Range": f"{offset}-{offset + count - 1}",
                },
                body=reader,
                ok=(202, 204),
            )
            location = self._location(sent, location)
            hasher = reader.hasher
            offset += count
        if hasher.hexdigest() != desc.digest.hex:
            raise IntegrityError(
                f"blob {desc.digest}: the data read hashes to "
                f"{desc.digest.algorithm}:{hasher.hexdigest()}; not committing the upload"
            )
        sent = self._send(
            "PUT",
            append_query(location, digest_query),
            scopes,
            upload_subject,
            headers={"Content-Length": "0"},
            body=b"",
            ok=(201, 204),
        )
        self._check_committed(sent, desc, hasher, subject)

    def _location(self, sent: Sent, base: str) -> str:
        """The absolute upload URL a response names (relative ones resolve against ``base``)."""
        location = sent.headers.get("Location")
        release(sent.response)
        if not location:
            raise RegistryError(
                f"{self.registry} opened an upload without saying where (no Location header)",
                status=sent.status,
            )
        return urljoin(sent.url or base, location)

    def _check_committed(self, sent: Sent, desc: Descriptor, hasher: Any, subject: Subject) -> None:
        answered = _as_digest(sent.headers.get("Docker-Content-Digest", ""))
        release(sent.response)
        if hasher.hexdigest() != desc.digest.hex:
            raise IntegrityError(
                f"blob {desc.digest}: the uploaded data hashes to "
                f"{desc.digest.algorithm}:{hasher.hexdigest()}"
            )
        if answered is not None and answered != desc.digest:
            raise IntegrityError(
                f"{subject.name}: the registry committed blob {desc.digest} as {answered}"
            )

    # -- listings -------------------------------------------------------------------------

    def _paged(
        self, first_url: str, key: str, scopes: Sequence[Scope], subject: Subject
    ) -> list[str]:
        items: list[str] = []
        url: str | None = first_url
        seen: set[str] = set()
        for _ in range(_MAX_PAGES):
            if url is None or url in seen:
                break
            seen.add(url)
            sent = self._send("GET", url, scopes, subject)
            link = sent.headers.get("Link")
            body = read_capped(sent.response, 64 * 1024 * 1024)
            try:
                data = json.loads(body)
            except (UnicodeDecodeError, json.JSONDecodeError):
                raise RegistryError(
                    f"{self.registry} answered {redact_url(url)} with something that is not JSON"
                ) from None
            values = data.get(key) if isinstance(data, dict) else None
            if values is None:
                values = []
            if not isinstance(values, list):
                raise RegistryError(f"{self.registry}: '{key}' in {redact_url(url)} is not a list")
            items.extend(str(v) for v in values)
            url = next_link(link, sent.url)
        return items

    def list_tags(self, repository: str, *, page_size: int | None = None) -> list[str]:
        """Every tag of ``repository`` (following ``Link`` pagination).

        ``page_size`` asks for pages of that many tags (``?n=``); the registry picks otherwise.
        """
        subject = Subject(self.registry, repository, "tags")
        query = f"?n={page_size}" if page_size else ""
        url = self._url(f"/v2/{self._repo_path(repository)}/tags/list{query}")
        return self._paged(url, "tags", scopes_for_pull(repository), subject)

    def catalog(self, *, page_size: int = 1000) -> list[str]:
        """Every repository the registry lists (following ``Link`` pagination)."""
        subject = Subject(self.registry, None, "catalog")
        url = self._url(f"/v2/_catalog?n={page_size}")
        return self._paged(url, "repositories", (Scope.catalog(),), subject)

    def served_from(self, repository: str, identifier: str) -> tuple[RegistryClient, str, None]:
        """This client and ``repository``: one registry serves everything it is asked."""
        return self, repository, None

    def ping(self) -> None:
        """Check that the registry answers and accepts the credentials (for ``login``)."""
        subject = Subject(self.registry, None, "registry")
        sent = self._send("GET", self._url("/v2/"), (), subject)
        release(sent.response)

    def check_reachable(self) -> None:
        """Check that the registry answers at all (any HTTP status, credentials unchecked).

        One ``GET /v2/``, retried as any request; raises :class:`NetworkError` (or
        :class:`TLSError`) when the registry cannot be reached, before a long job starts.
        """
        release(self.transport.send(Request("GET", self._url("/v2/"))).response)

    # -- lifetime -------------------------------------------------------------------------

    def close(self) -> None:
        self.transport.close()

    def __repr__(self) -> str:
        return f"RegistryClient({self.registry!r})"


if TYPE_CHECKING:  # mypy proves that a RegistryClient is a RegistryReader
    _reader: type[RegistryReader] = RegistryClient


def _sniff(raw: bytes) -> str:
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return ""
    return sniff_media_type(doc) if isinstance(doc, dict) else ""
