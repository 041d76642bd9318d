"""The auth flow, driven by hand: no sockets, a scripted 'server' answers each request."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

import pytest

from sneaker.errors import AuthError, RegistryError
from sneaker.registry.auth import (
    Authenticator,
    Token,
    build_token_request,
    parse_token_response,
)
from sneaker.registry.challenge import Challenge, Scope, parse_challenges, scopes_for_pull
from sneaker.registry.credentials import Credential
from sneaker.registry.messages import Headers, Request, Response

REGISTRY = "https://reg.example"
REALM = "https://auth.example/token"
BEARER = f'Bearer realm="{REALM}",service="reg.example"'


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


Server = Callable[[Request], Response]


def drive(auth: Authenticator, request: Request, scopes: tuple[Scope, ...], server: Server):
    """Run a flow to its end: (every request sent, the last response to the real request)."""
    sent: list[Request] = []
    final: Response | None = None
    flow = auth.flow(request, scopes)
    try:
        outgoing = next(flow)
        while True:
            sent.append(outgoing)
            answer = server(outgoing)
            if outgoing.purpose == "request":
                final = answer
            outgoing = flow.send(answer)
    except StopIteration:
        pass
    assert final is not None
    return sent, final


def resp(status: int, url: str, headers: dict[str, str] | None = None, body: bytes = b""):
    return Response(status, url, Headers(headers or {}), body)


def token_body(value: str, **extra: object) -> bytes:
    return json.dumps({"token": value, **extra}).encode()


class BearerRegistry:
    """A scripted registry + token service: tokens are 'tok-N'; ``valid`` says which work."""

    def __init__(self) -> None:
        self.issued = 0
        self.valid: set[str] = set()
        self.refuse_all = False
        self.expires_in: int | None = 300

    def __call__(self, request: Request) -> Response:
        if request.url.startswith(REALM):
            self.issued += 1
            token = f"tok-{self.issued}"
            self.valid.add(token)
            extra = {} if self.expires_in is None else {"expires_in": self.expires_in}
            return resp(200, request.url, body=token_body(token, **extra))
        header = request.headers.get("Authorization", "")
        if request.url == f"{REGISTRY}/v2/" and not header:
            return resp(401, request.url, {"WWW-Authenticate": BEARER})
        if header.startswith("Bearer ") and header[7:] in self.valid and not self.refuse_all:
            return resp(200, request.url)
        return resp(
            401,
            request.url,
            {"WWW-Authenticate": BEARER + ',scope="repository:a:pull",error="insufficient_scope"'},
        )


def manifest_request(repo: str = "a") -> Request:
    return Request("GET", f"{REGISTRY}/v2/{repo}/manifests/latest", {"Accept": "x"})


def test_ping_then_token_then_request() -> None:
    server = BearerRegistry()
    auth = Authenticator("reg.example", None)
    sent, final = drive(auth, manifest_request(), scopes_for_pull("a"), server)
    assert final.status == 200
    assert [r.purpose for r in sent] == ["ping", "token", "request"]
    assert sent[0].url == f"{REGISTRY}/v2/"
    query = parse_qs(urlsplit(sent[1].url).query)
    assert query == {"service": ["reg.example"], "scope": ["repository:a:pull"]}
    assert "Authorization" not in sent[1].headers  # anonymous
    assert sent[2].headers["Authorization"] == "Bearer tok-1"
    assert sent[2].headers["Accept"] == "x"


def test_token_is_cached_per_scope() -> None:
    server = BearerRegistry()
    auth = Authenticator("reg.example", None)
    drive(auth, manifest_request(), scopes_for_pull("a"), server)
    sent, _ = drive(auth, manifest_request(), scopes_for_pull("a"), server)
    assert [r.purpose for r in sent] == ["request"]
    assert server.issued == 1
    sent, _ = drive(auth, manifest_request("b"), scopes_for_pull("b"), server)
    assert [r.purpose for r in sent] == ["token", "request"]
    assert auth.token_requests == 2


def test_expired_token_is_refreshed() -> None:
    server = BearerRegistry()
    server.expires_in = None  # the spec's default: 60 s
    clock = Clock()
    auth = Authenticator("reg.example", None, clock=clock)
    drive(auth, manifest_request(), scopes_for_pull("a"), server)
    clock.now += 30
    sent, _ = drive(auth, manifest_request(), scopes_for_pull("a"), server)
    assert [r.purpose for r in sent] == ["request"]
    clock.now += 30
    sent, final = drive(auth, manifest_request(), scopes_for_pull("a"), server)
    assert [r.purpose for r in sent] == ["token", "request"]
    assert final.status == 200
    assert sent[-1].headers["Authorization"] == "Bearer tok-2"


def test_401_during_use_refreshes_once() -> None:
    server = BearerRegistry()
    auth = Authenticator("reg.example", None)
    drive(auth, manifest_request(), scopes_for_pull("a"), server)
    server.valid.clear()  # the registry forgot the token (revoked, clock skew...)
    sent, final = drive(auth, manifest_request(), scopes_for_pull("a"), server)
    assert [r.purpose for r in sent] == ["request", "token", "request"]
    assert final.status == 200
    assert sent[-1].headers["Authorization"] == "Bearer tok-2"


def test_second_401_is_the_answer() -> None:
    server = BearerRegistry()
    server.refuse_all = True
    auth = Authenticator("reg.example", None)
    sent, final = drive(auth, manifest_request(), scopes_for_pull("a"), server)
    assert final.status == 401
    assert [r.purpose for r in sent] == ["ping", "token", "request", "token", "request"]


def test_insufficient_scope_challenge_upgrades_the_scope() -> None:
    auth = Authenticator("reg.example", Credential("u", "p"))
    asked: list[list[str]] = []

    def server(request: Request) -> Response:
        if request.purpose == "ping":
            return resp(401, request.url, {"WWW-Authenticate": BEARER})
        if request.purpose == "token":
            asked.append(parse_qs(urlsplit(request.url).query)["scope"])
            return resp(200, request.url, body=token_body(f"t{len(asked)}"))
        if request.headers.get("Authorization") == "Bearer t2":
            return resp(201, request.url)
        challenge = BEARER + ',scope="repository:src:pull repository:dst:pull,push"'
        return resp(
            401, request.url, {"WWW-Authenticate": challenge + ',error="insufficient_scope"'}
        )

    _, final = drive(
        auth, Request("POST", f"{REGISTRY}/v2/dst/blobs/uploads/"), scopes_for_pull("dst"), server
    )
    assert final.status == 201
    assert asked == [
        ["repository:dst:pull"],
        ["repository:dst:pull,push", "repository:src:pull"],
    ]


def test_registry_without_auth_sends_no_authorization() -> None:
    auth = Authenticator("reg.example", Credential("u", "secret"))

    def server(request: Request) -> Response:
        assert "Authorization" not in request.headers
        return resp(200, request.url)

    sent, final = drive(auth, manifest_request(), scopes_for_pull("a"), server)
    assert final.status == 200
    assert [r.purpose for r in sent] == ["ping", "request"]
    sent, _ = drive(auth, manifest_request(), scopes_for_pull("a"), server)
    assert [r.purpose for r in sent] == ["request"]


def test_basic_sends_credentials_and_never_retries_them() -> None:
    auth = Authenticator("reg.example", Credential("user", "pw"))
    expected = "Basic " + base64.b64encode(b"user:pw").decode()
    seen: list[str | None] = []

    def server(request: Request) -> Response:
        seen.append(request.headers.get("Authorization"))
        if request.purpose == "ping":
            return resp(401, request.url, {"WWW-Authenticate": 'Basic realm="r"'})
        return resp(401, request.url, {"WWW-Authenticate": 'Basic realm="r"'})

    _sent, final = drive(auth, manifest_request(), scopes_for_pull("a"), server)
    assert final.status == 401
    assert seen == [None, expected]  # ping, then one try with the credentials


def test_basic_without_credentials_gives_the_401() -> None:
    auth = Authenticator("reg.example", None)

    def server(request: Request) -> Response:
        return resp(401, request.url, {"WWW-Authenticate": 'Basic realm="r"'})

    sent, final = drive(auth, manifest_request(), scopes_for_pull("a"), server)
    assert final.status == 401
    assert all("Authorization" not in r.headers for r in sent)


def test_ping_request_is_not_sent_twice() -> None:
    server = BearerRegistry()
    auth = Authenticator("reg.example", None)
    sent, final = drive(auth, Request("GET", f"{REGISTRY}/v2/"), (), server)
    assert [r.purpose for r in sent] == ["request", "token", "request"]
    assert final.status == 200
    assert "scope" not in parse_qs(urlsplit(sent[1].url).query)


def test_a_401_from_another_host_starts_no_retry() -> None:
    auth = Authenticator("reg.example", Credential("u", "p"))

    def server(request: Request) -> Response:
        if request.purpose == "ping":
            return resp(200, request.url)
        # The blob was redirected to storage, which refused: not the registry's challenge.
        return resp(401, "https://storage.example/blob?sig=x", {"WWW-Authenticate": BEARER})

    sent, final = drive(auth, manifest_request(), scopes_for_pull("a"), server)
    assert final.status == 401
    assert [r.purpose for r in sent] == ["ping", "request"]


def test_unanswerable_challenge_is_a_clear_error() -> None:
    auth = Authenticator("reg.example", None)
    flow = auth.flow(manifest_request(), ())
    ping = next(flow)
    with pytest.raises(AuthError, match=r"cannot answer \(negotiate\)"):
        flow.send(resp(401, ping.url, {"WWW-Authenticate": "Negotiate"}))


def test_token_service_refusing_credentials() -> None:
    auth = Authenticator("reg.example", Credential("alice", "wrong", source="command line"))
    flow = auth.flow(manifest_request(), scopes_for_pull("a"))
    ping = next(flow)
    token_request = flow.send(resp(401, ping.url, {"WWW-Authenticate": BEARER}))
    assert token_request.headers["Authorization"].startswith("Basic ")
    assert parse_qs(urlsplit(token_request.url).query)["account"] == ["alice"]
    with pytest.raises(AuthError) as info:
        flow.send(resp(401, token_request.url))
    message = str(info.value)
    assert message == (
        "access denied: the token service at https://auth.example/token refused the "
        "credentials of user 'alice' for reg.example (from command line)"
    )
    assert "wrong" not in message
    assert "wrong" not in (info.value.hint or "")


def test_token_service_refusing_anonymous() -> None:
    auth = Authenticator("reg.example", None)
    flow = auth.flow(manifest_request(), scopes_for_pull("a"))
    ping = next(flow)
    token_request = flow.send(resp(401, ping.url, {"WWW-Authenticate": BEARER}))
    with pytest.raises(AuthError, match="refused anonymous access"):
        flow.send(resp(403, token_request.url))


def test_token_service_error_is_a_registry_error() -> None:
    auth = Authenticator("reg.example", None)
    flow = auth.flow(manifest_request(), scopes_for_pull("a"))
    ping = next(flow)
    token_request = flow.send(resp(401, ping.url, {"WWW-Authenticate": BEARER}))
    with pytest.raises(RegistryError, match="HTTP 500 to a token request"):
        flow.send(resp(500, token_request.url))


def test_credentials_never_go_to_a_plain_http_realm_elsewhere() -> None:
    auth = Authenticator("reg.example", Credential("u", "p"))
    flow = auth.flow(manifest_request(), scopes_for_pull("a"))
    ping = next(flow)
    challenge = 'Bearer realm="http://auth.example/token",service="s"'
    with pytest.raises(AuthError, match="refusing to send the credentials"):
        flow.send(resp(401, ping.url, {"WWW-Authenticate": challenge}))


def test_identity_token_uses_oauth_refresh_grant() -> None:
    challenge = parse_challenges(BEARER)[0]
    request = build_token_request(challenge, scopes_for_pull("a"), Credential("", "", "refresh-me"))
    assert request.method == "POST"
    assert request.url == REALM
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert isinstance(request.body, bytes)
    form = parse_qs(request.body.decode())
    assert form["grant_type"] == ["refresh_token"]
    assert form["refresh_token"] == ["refresh-me"]
    assert form["scope"] == ["repository:a:pull"]
    assert form["service"] == ["reg.example"]
    assert "Authorization" not in request.headers


def test_password_grant_and_fallback_to_get() -> None:
    auth = Authenticator("reg.example", Credential("u", "p"), oauth_password=True)
    flow = auth.flow(manifest_request(), scopes_for_pull("a"))
    ping = next(flow)
    post = flow.send(resp(401, ping.url, {"WWW-Authenticate": BEARER}))
    assert post.method == "POST"
    assert isinstance(post.body, bytes)
    assert parse_qs(post.body.decode())["grant_type"] == ["password"]
    get = flow.send(resp(404, post.url))
    assert get.method == "GET"
    assert get.headers["Authorization"].startswith("Basic ")
    real = flow.send(resp(200, get.url, body=token_body("t")))
    assert real.headers["Authorization"] == "Bearer t"


def test_realm_with_query_keeps_it() -> None:
    challenge = Challenge("bearer", (("realm", "https://a/t?x=1"), ("service", "s")))
    request = build_token_request(challenge, (), None)
    assert request.url == "https://a/t?x=1&service=s"


def test_parse_token_response_fields() -> None:
    token = parse_token_response(
        b'{"access_token": "abc", "expires_in": 300}', now=100.0, wall_now=0.0
    )
    assert token.value == "abc"
    assert token.expires_at == pytest.approx(100 + 300 - 10)
    default = parse_token_response(b'{"token": "x"}', now=0.0, wall_now=0.0)
    assert default.expires_at == pytest.approx(60 - 6)
    aged = parse_token_response(
        b'{"token": "x", "expires_in": 100, "issued_at": "2024-01-01T00:00:30Z"}',
        now=0.0,
        wall_now=1704067200.0 + 60,  # 30 s after issue
    )
    assert aged.expires_at == pytest.approx(100 - 30 - 10)
    skewed = parse_token_response(
        b'{"token": "x", "expires_in": 100, "issued_at": "2000-01-01T00:00:00Z"}',
        now=0.0,
        wall_now=1704067200.0,
    )
    assert skewed.expires_at == pytest.approx(90)  # clocks disagree: issued_at ignored


@pytest.mark.parametrize("body", [b"nope", b"[]", b"{}", b'{"token": ""}'])
def test_parse_token_response_errors(body: bytes) -> None:
    with pytest.raises(RegistryError):
        parse_token_response(body, now=0.0, wall_now=0.0)


def test_token_repr_hides_value() -> None:
    token = Token("sekrit-token", 5.0, "sekrit-refresh")
    assert "sekrit" not in repr(token)
    assert "sekrit" not in str(token)


def test_requests_repr_hides_authorization() -> None:
    request = Request(
        "GET", "https://u:pw@h/v2/?sig=SIG", {"Authorization": "Bearer sekrit"}, purpose="token"
    )
    text = repr(request)
    assert "sekrit" not in text
    assert "pw" not in text
    assert "SIG" not in text


def test_no_credentials_for_another_host() -> None:
    server = BearerRegistry()
    auth = Authenticator("reg.example", Credential("u", "p"), api_host="reg.example")
    drive(auth, manifest_request(), scopes_for_pull("a"), server)
    elsewhere = Request("PUT", "https://uploads.example/session/1?digest=x")
    sent, _ = drive(auth, elsewhere, scopes_for_pull("a"), lambda r: resp(201, r.url))
    assert len(sent) == 1
    assert "Authorization" not in sent[0].headers


def test_each_repository_gets_its_own_credential_and_token() -> None:
    """A namespace may have credentials of its own (auth.json keys such as host/team):
    the flow asks the provider for the repository the request's scopes name."""
    server = BearerRegistry()
    asked: list[str | None] = []

    def provider(repository: str | None) -> Credential | None:
        asked.append(repository)
        return Credential(f"user-{repository}", "pw") if repository else None

    auth = Authenticator("reg.example", provider)
    sent, _ = drive(auth, manifest_request("team/app"), scopes_for_pull("team/app"), server)
    tokens = [r for r in sent if r.purpose == "token"]
    assert tokens[0].headers["Authorization"] == "Basic " + base64.b64encode(
        b"user-team/app:pw"
    ).decode("ascii")
    sent, _ = drive(auth, manifest_request("other"), scopes_for_pull("other"), server)
    [token] = [r for r in sent if r.purpose == "token"]
    assert "account=user-other" in token.url
    assert asked == ["team/app", "other"]
    assert auth.credential is None  # the registry's own: none here
    assert asked[-1] is None
