"""Reading through mirrors: one client per endpoint, mirrors first, the origin last.

:class:`MirroringClient` is a :class:`~sneaker.registry.reader.RegistryReader`
for one registry name: it
passes each call to the endpoints of :meth:`RegistrySettings.for_registry` in
order. A mirror that cannot be reached, answers 5xx, refuses us, lacks the
manifest or blob (404) or sends content that does not match is skipped and the
next endpoint is asked; the origin's answer is final, and when it is an error,
that error ends with what each mirror tried first answered
(``... (tried first: mirror HOST/REPO: tag 1 not found in HOST/REPO)``). A mirror
that could not be reached is not asked again during the run. A blob's bytes are checked by whoever
reads them (:func:`sneaker.transfer.fetch.fetch_one`): when they do not match its digest,
:meth:`MirroringClient.reject_blob` takes the endpoint that sent them out of the
blob's list, and the next :meth:`~MirroringClient.open_blob` asks the next one.

Only the endpoints change: callers keep the image's original reference, so an
archive names the image as the user asked for it, never as a mirror holds it.

Credentials: each endpoint's client looks up the stored credentials of its own
host; ``--username``/``--password-stdin`` go to the requested registry only,
never to a mirror on another host.

``insecure`` endpoints (registries.conf, daemon.json) are reached over https
without certificate verification, or over plain http when https does not
connect, as docker does for insecure registries.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Generic, TypeVar

from ..errors import AuthError, IntegrityError, NetworkError, NotFound, RegistryError, SneakerError
from ..image.digest import Digest
from ..image.model import Descriptor
from ..settings import RegistrySettings, load_settings
from ..settings.endpoints import Endpoint, ResolvedEndpoints, normalize_host
from ..util.closing import Closing
from .client import BlobResponse, Referrers, RegistryClient
from .loopback import is_loopback_host
from .options import DEFAULT_OPTIONS, RegistryOptions
from .reader import RegistryReader

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "ClientFactory",
    "MirroringClient",
    "TargetClientFactory",
    "client_factory_for",
    "endpoint_options",
    "make_client_factory",
    "open_endpoint_client",
    "with_settings",
]

log = logging.getLogger(__name__)

T = TypeVar("T")
C = TypeVar("C", bound=RegistryReader)

#: what makes a mirror's answer "try the next endpoint" (the origin's is always final)
_FALLBACK: tuple[type[SneakerError], ...] = (
    NetworkError,
    RegistryError,
    NotFound,
    AuthError,
    IntegrityError,
)
#: a mirror gets one retry: the origin is there to fall back on
MIRROR_RETRIES = 1


def with_settings(options: RegistryOptions | None, settings: RegistrySettings) -> RegistryOptions:
    """``options`` with what the settings files add: registries.conf's credential helpers."""
    opts = options or DEFAULT_OPTIONS
    if opts.credential_helpers is None and settings.credential_helpers is not None:
        opts = replace(opts, credential_helpers=settings.credential_helpers)
    return opts


def endpoint_options(
    endpoint: Endpoint, options: RegistryOptions, requested_registry: str
) -> RegistryOptions:
    """The client options for ``endpoint`` when ``requested_registry`` was asked for."""
    opts = options
    if normalize_host(endpoint.registry) != normalize_host(requested_registry):
        opts = replace(opts, username=None, password=None)
    if endpoint.mirror:
        opts = replace(opts, retries=min(opts.retries, MIRROR_RETRIES))
    if endpoint.plain_http:
        opts = replace(opts, plain_http=True)
    if endpoint.insecure and not opts.insecure:  # a given --insecure stays the one named
        opts = replace(opts, insecure=True, insecure_source=endpoint.insecure_source)
    return opts


def open_endpoint_client(
    endpoint: Endpoint,
    options: RegistryOptions,
    requested_registry: str,
    env: Mapping[str, str] | None = None,
) -> RegistryClient:
    """A client for ``endpoint`` (an insecure one probed for https, else plain http)."""
    opts = endpoint_options(endpoint, options, requested_registry)
    if endpoint.insecure and not opts.plain_http and not is_loopback_host(endpoint.registry):
        # docker's rule for an insecure registry: https without verification, else http
        probe = RegistryClient(endpoint.registry, replace(opts, retries=0), env=env)
        try:
            probe.ping()
        except NetworkError as exc:
            log.info("%s: https failed (%s); using plain http", endpoint.registry, exc.message)
            opts = replace(opts, plain_http=True)
        except SneakerError:
            pass  # it answered over https, if only to refuse us
        finally:
            probe.close()
    return RegistryClient(endpoint.registry, opts, env=env)


def _add_mirrors_tried(error: SneakerError, tried: Sequence[str]) -> None:
    """Follow the message of ``error`` (the origin's) with what each mirror answered."""
    if tried:
        error.message = f"{error.message} (tried first: {'; '.join(tried)})"
        error.args = (error.message,)


class MirroringClient(Closing):
    """The read side of a registry client for ``registry``, served by its mirrors when they can.

    Thread-safe, like :class:`~sneaker.registry.RegistryClient`; close it (or use it
    as a context manager) to close the clients it opened.
    """

    def __init__(
        self,
        registry: str,
        settings: RegistrySettings,
        options: RegistryOptions | None = None,
        *,
        env: Mapping[str, str] | None = None,
        open_client: Callable[[Endpoint], RegistryClient] | None = None,
    ) -> None:
        self.registry = normalize_host(registry)
        self.settings = settings
        self.options = with_settings(options, settings)
        self._env = env
        self._open = open_client or (
            lambda endpoint: open_endpoint_client(endpoint, self.options, self.registry, self._env)
        )
        self._lock = threading.Lock()
        self._clients: dict[Endpoint, RegistryClient] = {}
        self._client_locks: dict[Endpoint, threading.Lock] = {}
        self._resolved: dict[str, ResolvedEndpoints] = {}
        self._down: dict[tuple[str, bool], str] = {}
        #: (repository, tag or digest) -> the endpoint whose answer about that manifest was used
        self._manifest_sources: dict[tuple[str, str], Endpoint] = {}
        #: (repository, blob digest) -> the endpoint that answered the latest open_blob
        self._blob_sources: dict[tuple[str, Digest], Endpoint] = {}
        #: blob digest -> the endpoints (described) whose bytes for it did not match it
        self._bad_blobs: dict[Digest, dict[Endpoint, str]] = {}
        #: (repository, what, endpoint) for every answer a mirror gave (for tests and --debug)
        self.served_by_mirror: list[tuple[str, str, str]] = []

    # -- endpoints ------------------------------------------------------------------------

    def endpoints(self, repository: str) -> ResolvedEndpoints:
        with self._lock:
            resolved = self._resolved.get(repository)
        if resolved is None:
            resolved = self.settings.for_registry(f"{self.registry}/{repository}")
            with self._lock:
                self._resolved[repository] = resolved
        return resolved

    def _client(self, endpoint: Endpoint) -> RegistryClient:
        with self._lock:
            client = self._clients.get(endpoint)
            if client is not None:
                return client
            lock = self._client_locks.setdefault(endpoint, threading.Lock())
        with lock:
            with self._lock:
                client = self._clients.get(endpoint)
            if client is None:
                client = self._open(endpoint)
                with self._lock:
                    self._clients[endpoint] = client
            return client

    def _candidates(
        self, repository: str, identifier: str | None, skip: Collection[Endpoint] = ()
    ) -> tuple[Sequence[Endpoint], list[str]]:
        """The endpoints to ask, and a note for each mirror left out because it could
        not be reached earlier in the run."""
        resolved = self.endpoints(repository)
        if resolved.blocked_by is not None:
            self.settings.check_blocked(resolved.name)  # raises RegistryBlocked naming the file
        with self._lock:
            down = dict(self._down)
        chosen: list[Endpoint] = []
        passed_over: list[str] = []
        for e in resolved.for_identifier(identifier):
            if e.mirror and (e.registry, e.plain_http) in down:
                reason = down[(e.registry, e.plain_http)]
                passed_over.append(f"mirror {e.describe(repository)}: {reason}")
            elif not e.mirror or e not in skip:
                chosen.append(e)
        return chosen, passed_over

    def _attempt(
        self,
        repository: str,
        identifier: str | None,
        what: str,
        call: Callable[[RegistryClient, str], T],
        *,
        absent: Callable[[T], bool] = lambda _: False,
    ) -> T:
        return self._serve(repository, identifier, what, call, absent=absent)[0]

    def _serve(
        self,
        repository: str,
        identifier: str | None,
        what: str,
        call: Callable[[RegistryClient, str], T],
        *,
        absent: Callable[[T], bool] = lambda _: False,
        skip: Collection[Endpoint] = (),
    ) -> tuple[T, Endpoint]:
        """:meth:`_attempt`, also saying which endpoint answered; mirrors in ``skip``
        are not asked. When the origin fails too, its error also says what each
        mirror answered."""
        candidates, tried = self._candidates(repository, identifier, skip)
        for position, endpoint in enumerate(candidates):
            last = position == len(candidates) - 1
            target = endpoint.repository_for(repository)
            try:
                result = call(self._client(endpoint), target)
            except _FALLBACK as exc:
                if last:
                    _add_mirrors_tried(exc, tried)
                    raise
                if isinstance(exc, NetworkError):
                    with self._lock:
                        self._down[(endpoint.registry, endpoint.plain_http)] = exc.message
                tried.append(f"mirror {endpoint.describe(repository)}: {exc.message}")
                log.info(
                    "mirror %s: %s; trying the next one", endpoint.describe(repository), exc.message
                )
                continue
            if not last and absent(result):
                tried.append(f"mirror {endpoint.describe(repository)}: no {what}")
                log.info("mirror %s has no %s", endpoint.describe(repository), what)
                continue
            if identifier is not None:  # a manifest: remember who answered (see source_for)
                with self._lock:
                    self._manifest_sources[(repository, identifier)] = endpoint
            if endpoint.mirror:
                where = endpoint.describe(repository)
                log.info("%s of %s/%s from mirror %s", what, self.registry, repository, where)
                with self._lock:
                    self.served_by_mirror.append((repository, what, where))
            return result, endpoint
        raise AssertionError("no endpoint to try")  # pragma: no cover - the origin is always last

    # -- the read API ---------------------------------------------------------------------

    def get_manifest(
        self, repository: str, identifier: str, accept: Sequence[str] | None = None
    ) -> tuple[bytes, str]:
        def call(client: RegistryClient, repo: str) -> tuple[bytes, str]:
            if accept is None:
                return client.get_manifest(repo, identifier)
            return client.get_manifest(repo, identifier, accept)

        return self._attempt(repository, identifier, f"manifest {identifier}", call)

    def head_manifest(
        self, repository: str, identifier: str, accept: Sequence[str] | None = None
    ) -> Descriptor | None:
        def call(client: RegistryClient, repo: str) -> Descriptor | None:
            if accept is None:
                return client.head_manifest(repo, identifier)
            return client.head_manifest(repo, identifier, accept)

        return self._attempt(
            repository, identifier, f"manifest {identifier}", call, absent=lambda d: d is None
        )

    def open_blob(
        self,
        repository: str,
        digest: Digest,
        offset: int = 0,
        validator: str | None = None,
    ) -> BlobResponse:
        """The blob from the first endpoint that serves it, leaving out the mirrors whose
        bytes for it did not match it (:meth:`reject_blob`)."""
        with self._lock:
            bad = set(self._bad_blobs.get(digest, ()))
        response, endpoint = self._serve(
            repository,
            None,
            f"blob {digest}",
            lambda client, repo: client.open_blob(repo, digest, offset, validator),
            skip=bad,
        )
        with self._lock:
            self._blob_sources[(repository, digest)] = endpoint
        return response

    def reject_blob(
        self, repository: str, digest: Digest, error: IntegrityError
    ) -> IntegrityError | None:
        """The bytes of blob ``digest`` last opened with :meth:`open_blob` do not match it.

        None when they came from a mirror: that mirror is not asked for this blob
        again, and the next :meth:`open_blob` asks the next endpoint. When they came
        from the origin, the error to raise: ``error`` naming every endpoint that
        sent bad bytes for the blob. (One thread at a time reads a digest: the
        cache's lock; so the latest answer for it is the one whose bytes were read.)
        """
        with self._lock:
            endpoint = self._blob_sources.get((repository, digest))
            if endpoint is None:
                return error
            bad = self._bad_blobs.setdefault(digest, {})
            again = endpoint in bad
            role = "mirror" if endpoint.mirror else "origin"
            bad[endpoint] = f"{role} {endpoint.describe(repository)}"
            names = list(bad.values())
        if endpoint.mirror and not again:
            log.info(
                "mirror %s: %s; trying the next endpoint",
                endpoint.describe(repository),
                error.message,
            )
            return None
        return IntegrityError(f"{error.message} (bad bytes from {', '.join(names)})")

    def blob_exists(self, repository: str, digest: Digest) -> int | None:
        return self._attempt(
            repository,
            None,
            f"blob {digest}",
            lambda client, repo: client.blob_exists(repo, digest),
            absent=lambda size: size is None,
        )

    def referrers(
        self, repository: str, digest: Digest, artifact_type: str | None = None
    ) -> Referrers | None:
        """The referrers list of the first endpoint that has the referrers API; None when no
        endpoint has it (the origin's answer, as ever, is final)."""
        return self._attempt(
            repository,
            None,
            f"referrers of {digest}",
            lambda client, repo: client.referrers(repo, digest, artifact_type),
            absent=lambda found: found is None,
        )

    def list_tags(self, repository: str, *, page_size: int | None = None) -> list[str]:
        """The tags of ``repository`` from the first endpoint that lists them."""
        return self._attempt(
            repository,
            None,
            "tags",
            lambda client, repo: client.list_tags(repo, page_size=page_size),
        )

    def catalog(self, *, page_size: int = 1000) -> list[str]:
        """The repositories the origin lists: a mirror's listing says nothing of the registry's."""
        resolved = self.settings.for_registry(self.registry)
        if resolved.blocked_by is not None:
            self.settings.check_blocked(resolved.name)  # raises RegistryBlocked naming the file
        return self._client(resolved.origin).catalog(page_size=page_size)

    def served_from(
        self, repository: str, identifier: str
    ) -> tuple[RegistryClient, str, str | None]:
        """The endpoint's client that served manifest ``identifier`` (see :meth:`source_for`),
        the repository path there, and the mirror's description when it is not the origin."""
        served, path, endpoint = self.source_for(repository, identifier)
        if (served.registry, path) == (self.registry, repository):
            return served, path, None
        return served, path, endpoint.describe(repository)

    def source_for(self, repository: str, identifier: str) -> tuple[RegistryClient, str, Endpoint]:
        """The client, repository path there, and endpoint that served manifest ``identifier``.

        After ``get_manifest(repository, identifier)`` (what :func:`sneaker.transfer.remote.resolve`
        asks first) this is the endpoint whose answer was used, a mirror or the origin;
        for a manifest not asked for yet, the origin. ``plan`` writes blob URLs of it.
        """
        with self._lock:
            endpoint = self._manifest_sources.get((repository, identifier))
        if endpoint is None:
            endpoint = self.endpoints(repository).origin
        return self._client(endpoint), endpoint.repository_for(repository), endpoint

    # -- lifetime -------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()

    def __repr__(self) -> str:
        return f"MirroringClient({self.registry!r})"


if TYPE_CHECKING:  # mypy proves that a MirroringClient is a RegistryReader
    _reader: type[RegistryReader] = MirroringClient


class _Clients(Closing, Generic[C]):
    """One client per registry name, opened on first use and closed together."""

    def __init__(
        self,
        settings: RegistrySettings,
        options: RegistryOptions | None = None,
        *,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.settings = settings
        self.options = with_settings(options, settings)
        self._env = env
        self._lock = threading.Lock()
        self._clients: dict[str, C] = {}

    def _open(self, host: str) -> C:
        raise NotImplementedError

    def __call__(self, registry: str) -> C:
        host = normalize_host(registry)
        with self._lock:
            client = self._clients.get(host)
            if client is None:
                client = self._clients[host] = self._open(host)
        return client

    def close(self) -> None:
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()


class ClientFactory(_Clients[RegistryReader]):
    """``factory(registry)`` -> the reader a verb reads ``registry`` through (one per name).

    A registry no setting mentions gets a plain :class:`RegistryClient` (with the
    insecure/plain-http flags that apply); one with mirrors, rewrites or blocks
    gets a :class:`MirroringClient`, which refuses a blocked name (RegistryBlocked) on
    its first request. Both are a :class:`~sneaker.registry.reader.RegistryReader`.
    Close the factory (or use it as a context manager) to close every client.
    """

    def _open(self, host: str) -> RegistryReader:
        if self.settings.has_rules_for(host):
            return MirroringClient(host, self.settings, self.options, env=self._env)
        origin = self.settings.for_registry(host).origin
        return open_endpoint_client(origin, self.options, host, self._env)


class TargetClientFactory(_Clients[RegistryClient]):
    """``factory(registry)`` -> a :class:`RegistryClient` for the named registry itself.

    For writing (``push``) and for what a registry itself holds (``inventory``):
    :meth:`RegistrySettings.target_endpoint`, no mirror, no ``location``, the
    ``insecure`` settings applied. Blocks are the caller's to check
    (:meth:`RegistrySettings.check_blocked`, per repository, before any request).
    """

    def _open(self, host: str) -> RegistryClient:
        target = self.settings.target_endpoint(host)
        return open_endpoint_client(target, self.options, host, self._env)


def make_client_factory(
    settings: RegistrySettings,
    options: RegistryOptions | None = None,
    *,
    env: Mapping[str, str] | None = None,
) -> ClientFactory:
    """A :class:`ClientFactory` for ``settings``; pass it as ``pull(client_factory=...)``."""
    return ClientFactory(settings, options, env=env)


@contextmanager
def client_factory_for(
    options: RegistryOptions | None = None,
    settings: RegistrySettings | None = None,
    client_factory: Callable[[str], RegistryReader] | None = None,
) -> Iterator[Callable[[str], RegistryReader]]:
    """The factory a reading verb uses: ``client_factory`` when given, else one for
    ``settings`` (default: :func:`sneaker.settings.load_settings` with ``options``'
    plain-http), closed on exit. One place, so every verb honours the same settings.
    """
    if client_factory is not None:
        yield client_factory
        return
    opts = options or DEFAULT_OPTIONS
    chosen = settings if settings is not None else load_settings(plain_http=opts.plain_http)
    with make_client_factory(chosen, opts) as factory:
        yield factory
