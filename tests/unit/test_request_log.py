"""The request log's lines (registry/requestlog.py) and the CLI's switch for them (cli/verbose.py):
what each line says, and that no credential, token or signed query string is in one."""

from __future__ import annotations

import logging
from urllib.parse import urlencode

import pytest

from sneaker.cli.verbose import enable_log
from sneaker.registry import requestlog
from sneaker.registry.messages import Request
from sneaker.registry.requestlog import Exchange, describe

SECRET = "s3cr3t-Passw0rd"
TOKEN = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ1In0.c2lnbmF0dXJlLW9mLXRoZS10b2tlbg"


def test_an_answered_request_with_size_time_and_the_authorization_scheme_only() -> None:
    request = Request(
        "GET",
        "https://user:pw@registry.example/v2/team/app/manifests/1?sig=abc",
        {"Authorization": f"Bearer {TOKEN}", "Accept": "application/json"},
    )
    line = describe(
        Exchange(
            request,
            request.url,
            0.0123,
            status=200,
            final_url=request.url,
            headers={"Content-Length": "1536"},
        )
    )
    assert line == (
        "GET https://registry.example/v2/team/app/manifests/1 -> 200, 1.5 kB in 12 ms "
        "(with a Bearer token)"
    )


def test_a_redirect_a_retry_and_a_failure() -> None:
    request = Request("GET", "https://r.example/v2/a/blobs/sha256:00")
    redirected = describe(
        Exchange(
            request,
            request.url,
            2.5,
            attempt=3,
            status=200,
            final_url="https://storage.example/bucket/blob?X-Amz-Signature=deadbeef",
            headers={"Content-Length": "3000000"},
        )
    )
    assert redirected == (
        "GET https://r.example/v2/a/blobs/sha256:00 -> 200, 3.0 MB in 2.5 s "
        "(redirected to https://storage.example/bucket/blob; attempt 3)"
    )
    failed = describe(Exchange(request, request.url, 1.0, attempt=2, error="connection reset"))
    assert failed == (
        "GET https://r.example/v2/a/blobs/sha256:00 failed in 1.0 s: connection reset (attempt 2)"
    )


def test_a_401_names_its_challenge_and_a_ping_says_so() -> None:
    ping = Request("GET", "https://r.example/v2/", purpose="ping")
    challenge = (
        'Bearer realm="https://auth.example/token?secret=1",service="r.example",'
        'scope="repository:a:pull",error="insufficient_scope"'
    )
    line = describe(
        Exchange(ping, ping.url, 0.004, status=401, headers={}, challenges=(challenge,))
    )
    assert line == (
        "GET https://r.example/v2/ -> 401 in 4 ms (ping; challenge Bearer "
        'realm="https://auth.example/token" service="r.example" scope="repository:a:pull" '
        'error="insufficient_scope")'
    )


def test_a_token_request_names_its_scopes_and_service_never_its_credentials() -> None:
    scopes = [f"repository:team/app{i}:pull" for i in range(5)]
    query = urlencode([("service", "r.example"), *(("scope", s) for s in scopes)])
    get = Request(
        "GET",
        f"https://auth.example/token?{query}&account=someone",
        {"Authorization": "Basic c29tZW9uZTpzM2NyM3QtUGFzc3cwcmQ="},
        purpose="token",
    )
    line = describe(Exchange(get, get.url, 0.05, status=200, headers={"Content-Length": "900"}))
    assert line == (
        "GET https://auth.example/token -> 200, 900 B in 50 ms (token for "
        "repository:team/app0:pull, repository:team/app1:pull, repository:team/app2:pull "
        "and 2 more, service r.example; with Basic credentials)"
    )
    form = urlencode(
        [
            ("service", "r.example"),
            ("scope", "repository:team/app:pull"),
            ("grant_type", "password"),
            ("username", "someone"),
            ("password", SECRET),
        ]
    ).encode()
    post = Request("POST", "https://auth.example/token", {}, form, purpose="token")
    line = describe(Exchange(post, post.url, 0.05, status=401, headers={}))
    assert SECRET not in line
    assert "someone" not in line
    assert line == (
        "POST https://auth.example/token -> 401 in 50 ms "
        "(token for repository:team/app:pull, service r.example (OAuth2))"
    )


def test_lines_reach_stderr_only_with_the_log_turned_on(capsys: pytest.CaptureFixture[str]) -> None:
    request = Request("HEAD", "https://r.example/v2/a/manifests/1")
    exchange = Exchange(request, request.url, 0.001, status=404, headers={})
    assert not requestlog.enabled()
    stop = enable_log()
    try:
        assert requestlog.enabled()
        requestlog.record(exchange)
        logging.getLogger("sneaker.registry.mirrors").debug("not at -v")
        stop_debug = enable_log(logging.DEBUG)  # --debug as well: still one line each
        logging.getLogger("sneaker.registry.tls").debug("trusting CA x.pem")
        logging.getLogger("sneaker.settings").warning("a registries.conf line is ignored")
        stop_debug()
    finally:
        stop()
    requestlog.record(exchange)  # off again
    assert not requestlog.enabled()
    assert capsys.readouterr().err.splitlines() == [
        "HEAD https://r.example/v2/a/manifests/1 -> 404 in 1 ms",
        "debug: trusting CA x.pem",
        "warning: a registries.conf line is ignored",
    ]
