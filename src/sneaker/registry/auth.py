"""The registry auth flow, as a generator that yields requests and receives responses.

No sockets here: :meth:`Authenticator.flow` is driven by the transport (or by a
test, by hand). The flow is docker's:

1. Ping ``/v2/`` once per registry to learn its challenge (200: no auth).
2. Bearer: fetch a token for the scopes the request needs from the realm,
   anonymously, with HTTP Basic (user/password), or by an OAuth2 POST
   (``grant_type=refresh_token`` with an identity token, or ``password``);
   cache it per (realm, service, scopes) until it expires.
   Basic: send the credentials directly.
3. Send the request with ``Authorization``. On a 401 from the registry host,
   read the new challenge (merging any scope it asks for), drop the token that
   failed, get a fresh one and retry exactly once. A second 401 is the answer.

Credentials and tokens go only to the registry host and its token realm; a
response from another host (a redirect target) never starts a retry.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlencode, urlsplit

from ..errors import AuthError, RegistryError
from .challenge import Challenge, Scope, merge_scopes, parse_challenges, pick_challenge
from .credentials import Credential
from .loopback import is_loopback_host
from .messages import Request, Response, same_origin
from .redact import redact_url

__all__ = [
    "DEFAULT_TOKEN_LIFETIME",
    "AuthFlow",
    "Authenticator",
    "Token",
    "basic_authorization",
    "build_token_request",
    "parse_token_response",
]

#: distribution's token spec: a token without ``expires_in`` lives 60 seconds.
DEFAULT_TOKEN_LIFETIME = 60
_MAX_TOKEN_BODY = 1 << 20
_CLIENT_ID = "sneaker"

#: What :meth:`Authenticator.flow` is: it yields requests, is sent responses, returns nothing
#: (the response to its last ``purpose="request"`` request is the answer).
AuthFlow = Generator[Request, Response, None]


@dataclass(frozen=True)
class Token:
    """A bearer token and the monotonic time it stops being used."""

    value: str = field(repr=False)
    expires_at: float
    refresh_token: str = field(default="", repr=False)

    def __repr__(self) -> str:
        return f"Token(<hidden>, expires_at={self.expires_at:.1f})"

    def usable(self, now: float) -> bool:
        return now < self.expires_at


def basic_authorization(username: str, password: str) -> str:
    raw = f"{username}:{password}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


def build_token_request(
    challenge: Challenge,
    scopes: Sequence[Scope],
    credential: Credential | None,
    *,
    oauth_password: bool = False,
    offline: bool = False,
) -> Request:
    """The request that asks ``challenge``'s realm for a token granting ``scopes``.

    An identity token is exchanged by an OAuth2 POST (``grant_type=refresh_token``);
    a user name and password go as HTTP Basic on a GET (docker's default) or, with
    ``oauth_password``, in an OAuth2 POST (``grant_type=password``).
    """
    realm = challenge.realm
    if not realm:
        raise AuthError("the registry's Bearer challenge names no token realm")
    service = challenge.service
    scope_texts = [str(s) for s in scopes]
    use_oauth = credential is not None and (
        bool(credential.identity_token) or (oauth_password and bool(credential.password))
    )
    if credential is not None and use_oauth:
        form: list[tuple[str, str]] = []
        if service:
            form.append(("service", service))
        if scope_texts:
            form.append(("scope", " ".join(scope_texts)))
        form.append(("client_id", _CLIENT_ID))
        if offline:
            form.append(("access_type", "offline"))
        if credential.identity_token:
            form += [("grant_type", "refresh_token"), ("refresh_token", credential.identity_token)]
        else:
            form += [
                ("grant_type", "password"),
                ("username", credential.username),
                ("password", credential.password),
            ]
        return Request(
            "POST",
            realm,
            {"Content-Type": "application/x-www-form-urlencoded"},
            urlencode(form).encode("ascii"),
            purpose="token",
        )
    query: list[tuple[str, str]] = []
    if service:
        query.append(("service", service))
    query += [("scope", s) for s in scope_texts]
    headers: dict[str, str] = {}
    if credential is not None and credential.username and credential.password:
        query.append(("account", credential.username))
        if offline:
            query.append(("offline_token", "true"))
            query.append(("client_id", _CLIENT_ID))
        headers["Authorization"] = basic_authorization(credential.username, credential.password)
    url = realm
    if query:
        url += ("&" if urlsplit(realm).query else "?") + urlencode(query)
    return Request("GET", url, headers, purpose="token")


def _parse_issued_at(text: Any) -> float | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.timestamp()


def parse_token_response(
    body: bytes, *, now: float, wall_now: float, realm: str = "the token service"
) -> Token:
    """A :class:`Token` from a token endpoint's JSON (``token`` or ``access_token``).

    ``expires_in`` defaults to 60 s; ``issued_at`` shortens the lifetime by the
    token's age when the two clocks roughly agree. The token is treated as expired
    a little early (10% of its life, at most 10 s) so it is never sent stale.
    """
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise RegistryError(f"{realm} answered with something that is not JSON") from None
    if not isinstance(data, dict):
        raise RegistryError(f"{realm} answered with JSON that is not an object")
    value = data.get("token") or data.get("access_token")
    if not isinstance(value, str) or not value:
        raise RegistryError(f"{realm} answered without a token")
    lifetime = data.get("expires_in")
    if not isinstance(lifetime, (int, float)) or isinstance(lifetime, bool) or lifetime <= 0:
        lifetime = DEFAULT_TOKEN_LIFETIME
    remaining = float(lifetime)
    issued = _parse_issued_at(data.get("issued_at"))
    if issued is not None:
        age = wall_now - issued
        if 0 < age < remaining:
            remaining -= age
    margin = min(10.0, float(lifetime) * 0.1)
    refresh = data.get("refresh_token")
    return Token(value, now + remaining - margin, refresh if isinstance(refresh, str) else "")


def _describe_realm(realm: str) -> str:
    return f"the token service at {redact_url(realm)}"


class Authenticator:
    """Per-registry auth state: the challenge learnt by the ping, the token cache.

    Thread-safe: several threads may run flows at once. A token missing from the
    cache is fetched by one of them while the others for the same scopes wait.
    """

    def __init__(
        self,
        registry: str,
        credential: Credential | Callable[[str | None], Credential | None] | None = None,
        *,
        api_host: str | None = None,
        oauth_password: bool = False,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.registry = registry
        self.api_host = api_host.lower() if api_host else None
        if callable(credential):
            self._credential_provider: Callable[[str | None], Credential | None] = credential
        else:
            fixed = credential
            self._credential_provider = lambda _repository: fixed
        self.oauth_password = oauth_password
        self._clock = clock
        self._wall_clock = wall_clock
        self._lock = threading.Lock()
        self._ping_lock = threading.Lock()
        self._pinged = False
        self._challenge: Challenge | None = None
        self._tokens: dict[tuple[str, str, tuple[Scope, ...]], Token] = {}
        self._fetch_locks: dict[tuple[str, str, tuple[Scope, ...]], threading.Lock] = {}
        self.token_requests = 0  # how many tokens were fetched (for tests and --debug)

    @property
    def credential(self) -> Credential | None:
        """The credential offered for the registry itself (asked of the provider)."""
        return self._credential_provider(None)

    def credential_for(self, scopes: Sequence[Scope]) -> Credential | None:
        """The credential for the repository the first repository scope names (a
        namespace may have credentials of its own), else the registry's."""
        repository = next((s.name for s in scopes if s.resource_type == "repository"), None)
        return self._credential_provider(repository)

    @property
    def challenge(self) -> Challenge | None:
        """The challenge learnt so far (None: none needed, or not pinged yet)."""
        return self._challenge

    @property
    def pinged(self) -> bool:
        return self._pinged

    def flow(self, request: Request, scopes: Sequence[Scope] = ()) -> AuthFlow:
        """Send ``request`` authorised for ``scopes``; see the module docstring.

        A request to a host other than ``api_host`` (an upload location elsewhere, say)
        goes without credentials.
        """
        if self.api_host is not None and request.host != self.api_host:
            yield request.with_header("Authorization", None)
            return
        ping_url = _ping_url(request.url)
        if not self._pinged and request.url != ping_url:
            with self._ping_lock:
                if not self._pinged:
                    answer = yield Request("GET", ping_url, {}, purpose="ping")
                    self._learn_from_ping(answer)
        credential = self.credential_for(scopes)
        scopes = merge_scopes(scopes)
        authorization, token = yield from self._authorize(scopes, credential, failed=None)
        response = yield request.with_header("Authorization", authorization)
        if response.status != 401 or not same_origin(response.url, request.url):
            return
        challenge = pick_challenge(parse_challenges(response.headers.get_all("WWW-Authenticate")))
        if challenge is None:
            return
        with self._lock:
            self._challenge = challenge
            self._pinged = True
        if challenge.scheme == "basic" and authorization is not None:
            return  # the credentials were refused; asking again changes nothing
        if challenge.scheme == "bearer":
            scopes = merge_scopes(scopes, challenge.scopes)
        retry, _ = yield from self._authorize(scopes, credential, failed=token)
        if retry is None:
            return
        yield request.with_header("Authorization", retry)

    # -- internals ----------------------------------------------------------------------

    def _learn_from_ping(self, response: Response) -> None:
        challenge: Challenge | None = None
        if response.status == 401:
            values = response.headers.get_all("WWW-Authenticate")
            challenge = pick_challenge(parse_challenges(values))
            if challenge is None:
                schemes = ", ".join(sorted({c.scheme for c in parse_challenges(values)}))
                raise AuthError(
                    f"{self.registry} asks for authentication sneaker cannot answer"
                    + (f" ({schemes})" if schemes else " (no usable WWW-Authenticate challenge)"),
                    hint="sneaker speaks the Bearer token and Basic schemes",
                )
        with self._lock:
            self._challenge = challenge
            self._pinged = True

    def _authorize(
        self, scopes: tuple[Scope, ...], credential: Credential | None, failed: Token | None
    ) -> Generator[Request, Response, tuple[str | None, Token | None]]:
        """The ``Authorization`` value for ``scopes`` (fetching a token when needed)."""
        with self._lock:
            challenge = self._challenge
        if challenge is None:
            return None, None
        if challenge.scheme == "basic":
            if credential is None or not credential.username:
                return None, None
            return basic_authorization(credential.username, credential.password), None
        key = (challenge.realm or "", challenge.service or "", scopes)
        with self._lock:
            fetch_lock = self._fetch_locks.setdefault(key, threading.Lock())
        with fetch_lock:
            with self._lock:
                token = self._tokens.get(key)
                if token is not None and (token is failed or not token.usable(self._clock())):
                    del self._tokens[key]
                    token = None
            if token is None:
                token = yield from self._fetch_token(challenge, scopes, credential)
                with self._lock:
                    self._tokens[key] = token
        return f"Bearer {token.value}", token

    def _fetch_token(
        self, challenge: Challenge, scopes: tuple[Scope, ...], credential: Credential | None
    ) -> Generator[Request, Response, Token]:
        realm = challenge.realm or ""
        if (
            credential is not None
            and not credential.is_empty
            and urlsplit(realm).scheme != "https"
            and not is_loopback_host(urlsplit(realm).netloc)
        ):
            raise AuthError(
                f"refusing to send the credentials for {self.registry} over plain HTTP "
                f"to {_describe_realm(realm)}",
                hint="the registry's token realm must use https",
            )
        request = build_token_request(
            challenge, scopes, credential, oauth_password=self.oauth_password
        )
        with self._lock:
            self.token_requests += 1
        response = yield request
        if (
            request.method == "POST"
            and response.status in (404, 405)
            and credential is not None
            and not credential.identity_token
        ):
            # A token service without OAuth2 password grants: ask as docker does by default.
            request = build_token_request(challenge, scopes, credential, oauth_password=False)
            response = yield request
        self._check_token_response(response, realm, credential)
        return parse_token_response(
            response.body[:_MAX_TOKEN_BODY],
            now=self._clock(),
            wall_now=self._wall_clock(),
            realm=_describe_realm(realm),
        )

    def _check_token_response(
        self, response: Response, realm: str, credential: Credential | None
    ) -> None:
        if response.status == 200:
            return
        where = _describe_realm(realm)
        if response.status in (401, 403):
            if credential is None or credential.is_empty:
                raise AuthError(
                    f"authentication required: {where} refused anonymous access to {self.registry}",
                    hint=f"run 'sneaker login {self.registry}' or pass --username",
                )
            who = f"user {credential.username!r}" if credential.username else "the identity token"
            raise AuthError(
                f"access denied: {where} refused the credentials of {who} "
                f"for {self.registry} (from {credential.source or 'configuration'})",
                hint=f"check the password, or run 'sneaker login {self.registry}' again",
            )
        raise RegistryError(
            f"{where} answered HTTP {response.status} to a token request",
            status=response.status,
        )


def _ping_url(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/v2/"
