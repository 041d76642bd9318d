"""Pure protocol helpers of the registry client: headers, retries, proxies, redaction, errors."""

from __future__ import annotations

import io
import json
import ssl
from datetime import datetime, timezone
from email.utils import format_datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

import sneaker.registry as registry_pkg
from sneaker.cli.main import cli
from sneaker.errors import (
    AuthError,
    ConfigError,
    IntegrityError,
    NotFound,
    RateLimited,
    RegistryError,
)
from sneaker.image.digest import Digest
from sneaker.registry.client import _ChunkReader, _validator
from sneaker.registry.credentials import Credential
from sneaker.registry.headers import (
    append_query,
    media_type_of,
    next_link,
    parse_content_range,
)
from sneaker.registry.messages import Headers, same_origin
from sneaker.registry.options import RegistryOptions
from sneaker.registry.problems import Subject, parse_error_body, raise_for_status
from sneaker.registry.proxy import bypasses_proxy, proxy_for
from sneaker.registry.redact import redact_headers, redact_url
from sneaker.registry.retry import RetryPolicy, parse_retry_after
from sneaker.registry.tls import build_ssl_context, certs_dirs_for, warn_insecure
from sneaker.registry.transport import describe_exception


def test_all_is_honest() -> None:
    for name in registry_pkg.__all__:
        assert hasattr(registry_pkg, name), name
    assert sorted(registry_pkg.__all__) == sorted(set(registry_pkg.__all__))
    for name in ("RegistryClient", "RegistryOptions", "BlobResponse", "Credential", "Scope"):
        assert name in registry_pkg.__all__


# -- Retry-After and backoff ----------------------------------------------------------------


def test_retry_after_seconds_and_dates() -> None:
    now = 1_700_000_000.0
    assert parse_retry_after("7", now=now) == 7.0
    assert parse_retry_after(" 0 ", now=now) == 0.0
    later = format_datetime(datetime.fromtimestamp(now + 30, tz=timezone.utc), usegmt=True)
    assert parse_retry_after(later, now=now) == pytest.approx(30.0)
    earlier = format_datetime(datetime.fromtimestamp(now - 30, tz=timezone.utc), usegmt=True)
    assert parse_retry_after(earlier, now=now) == 0.0
    for junk in (None, "", "soon", "-5", "1.5"):
        assert parse_retry_after(junk, now=now) is None


def test_backoff_is_bounded_and_jittered() -> None:
    policy = RetryPolicy(retries=5, base=0.5, cap=4.0)
    assert policy.backoff(0, rand=lambda: 0.0) == 0.25
    assert policy.backoff(0, rand=lambda: 1.0) == 0.5
    assert policy.backoff(3, rand=lambda: 1.0) == 4.0
    assert policy.backoff(30, rand=lambda: 1.0) == 4.0
    assert policy.delay_for(5, None) is None  # retries used up
    assert policy.delay_for(0, 3.0) == 3.0  # Retry-After wins
    assert policy.delay_for(0, 10_000.0) is None  # too long to wait: give up now


def test_brief_retries_of_the_default_policy_take_about_a_second() -> None:
    policy = RetryPolicy()
    waits = [policy.delay_for(n, None, rand=lambda: 1.0, brief=True) for n in range(6)]
    assert waits == [0.05, 0.1, 0.2, 0.4, 0.4, None]
    assert policy.delay_for(0, 3.0, brief=True) == 3.0  # a Retry-After still wins
    full = [policy.delay_for(n, None, rand=lambda: 1.0) for n in range(5)]
    assert full == [0.5, 1.0, 2.0, 4.0, 8.0]


# -- Content-Range, Link, Content-Type -----------------------------------------------------


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        ("bytes 0-99/1000", (0, 99, 1000)),
        ("bytes 100-999/*", (100, 999, None)),
        ("BYTES  5-5/6", (5, 5, 6)),
        ("bytes 10-5/100", None),
        ("bytes 0-100/100", None),
        ("bytes */100", None),
        ("0-99", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_content_range(value: str | None, parsed: object) -> None:
    assert parse_content_range(value) == parsed


def test_next_link() -> None:
    base = "https://r.example/v2/a/tags/list"
    assert (
        next_link('</v2/a/tags/list?last=x&n=2>; rel="next"', base)
        == "https://r.example/v2/a/tags/list?last=x&n=2"
    )
    assert next_link('<https://o/x>; rel="prev", <https://o/y>; rel=next', base) == "https://o/y"
    assert next_link('<https://o/x>; rel="prev"', base) is None
    assert next_link(None, base) is None


def test_media_type_and_query() -> None:
    assert media_type_of("application/JSON; charset=utf-8") == "application/json"
    assert media_type_of(None) == ""
    assert append_query("https://h/u?_state=abc", "digest=sha256:1") == (
        "https://h/u?_state=abc&digest=sha256:1"
    )
    assert append_query("/u", "digest=d") == "/u?digest=d"


def test_validator_prefers_strong_etag() -> None:
    assert _validator(Headers({"ETag": '"abc"', "Last-Modified": "x"})) == '"abc"'
    assert _validator(Headers({"ETag": 'W/"abc"', "Last-Modified": "x"})) == "x"
    assert _validator(Headers({})) is None


def test_headers_are_case_insensitive_and_multi_valued() -> None:
    headers = Headers([("WWW-Authenticate", "Basic"), ("www-authenticate", "Bearer realm=x")])
    assert headers.get_all("Www-Authenticate") == ["Basic", "Bearer realm=x"]
    assert headers["WWW-AUTHENTICATE"] == "Basic, Bearer realm=x"
    assert len(headers) == 1
    assert "secret" not in repr(Headers({"Authorization": "Bearer secret"}))


def test_same_origin() -> None:
    assert same_origin("https://h:5000/a", "http://h:5000/b")
    assert same_origin("https://H/a", "https://h:443/b")
    assert not same_origin("https://h/a", "https://s3.example/b")
    assert not same_origin("https://h:5000/a", "https://h:5001/a")


# -- proxies --------------------------------------------------------------------------------


def test_proxy_choice() -> None:
    env = {
        "HTTPS_PROXY": "proxy:3128",
        "http_proxy": "http://p2:80",
        "NO_PROXY": ".corp,10.0.0.0/8",
    }
    assert proxy_for("https://ghcr.io/v2/", env) == "http://proxy:3128"
    assert proxy_for("http://ghcr.io/v2/", env) == "http://p2:80"
    assert proxy_for("https://reg.corp/v2/", env) is None
    assert proxy_for("https://a.reg.corp/v2/", env) is None
    assert proxy_for("https://10.1.2.3:5000/v2/", env) is None
    assert proxy_for("https://localhost:5000/v2/", env) is None  # loopback: never proxied
    assert proxy_for("https://127.0.0.1/v2/", env) is None
    assert proxy_for("https://ghcr.io/v2/", {}) is None


@pytest.mark.parametrize(
    ("host", "port", "no_proxy", "bypass"),
    [
        ("a.example", 443, "*", True),
        ("a.example", 443, "example", True),
        ("a.example", 443, "*.example", True),
        ("example", 443, ".example", True),
        ("notexample", 443, "example", False),
        ("a.example", 5000, "a.example:5000", True),
        ("a.example", 443, "a.example:5000", False),
        ("192.168.1.5", 443, "192.168.0.0/16", True),
        ("192.168.1.5", 443, "192.168.1.5", True),
        ("192.168.1.5", 443, "192.168.1.6", False),
        ("::1", 443, "", True),
        ("2001:db8::1", 443, "[2001:db8::1]:443", True),
    ],
)
def test_no_proxy(host: str, port: int, no_proxy: str, bypass: bool) -> None:
    assert bypasses_proxy(host, port, no_proxy) is bypass


# -- redaction ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "safe"),
    [
        ("https://user:pw@reg.example:5000/v2/x", "https://reg.example:5000/v2/x"),
        (
            "https://bucket.s3.amazonaws.com/blob?X-Amz-Signature=abc&X-Amz-Credential=k",
            "https://bucket.s3.amazonaws.com/blob",
        ),
        ("/v2/a/blobs/uploads/u?_state=tok#frag", "/v2/a/blobs/uploads/u"),
        ("http://[::1]:5000/v2/", "http://[::1]:5000/v2/"),
    ],
)
def test_redact_url(url: str, safe: str) -> None:
    assert redact_url(url) == safe


def test_redact_headers() -> None:
    assert redact_headers({"Authorization": "Bearer x", "Accept": "y"}) == {
        "Authorization": "<redacted>",
        "Accept": "y",
    }


def test_options_repr_hides_password() -> None:
    options = RegistryOptions(username="u", password="hunter2")
    assert "hunter2" not in repr(options)


# -- error mapping --------------------------------------------------------------------------


def body(*errors: tuple[str, str]) -> bytes:
    return json.dumps({"errors": [{"code": c, "message": m} for c, m in errors]}).encode()


SUBJECT = Subject("reg.example", "team/app", "manifest", "v1")
URL = "https://reg.example/v2/team/app/manifests/v1?sig=secret"


def raise_it(status: int, data: bytes = b"", headers=None, **kwargs: object) -> None:
    raise_for_status(
        status,
        headers or {},
        data,
        subject=kwargs.pop("subject", SUBJECT),
        method="GET",
        url=URL,
        **kwargs,  # type: ignore[arg-type]
    )


def test_parse_error_body() -> None:
    assert parse_error_body(body(("MANIFEST_UNKNOWN", "manifest unknown"))) == (
        ("MANIFEST_UNKNOWN",),
        "manifest unknown",
    )
    assert parse_error_body(b"plain failure\nmore") == ((), "plain failure")
    assert parse_error_body(b"<html><body>x</body></html>") == ((), "")
    assert parse_error_body(b'{"errors": "nope"}') == ((), "")


def test_401_anonymous() -> None:
    with pytest.raises(AuthError) as info:
        raise_it(401, body(("UNAUTHORIZED", "authentication required")))
    assert str(info.value) == "authentication required for repository team/app on reg.example"
    assert info.value.hint is not None
    assert "sneaker login reg.example" in info.value.hint
    assert "--username" in info.value.hint


def test_401_and_403_with_credentials() -> None:
    cred = Credential("alice", "hunter2", source="command line")
    with pytest.raises(AuthError) as info:
        raise_it(401, credential=cred)
    assert str(info.value) == "access denied to repository team/app on reg.example for user 'alice'"
    with pytest.raises(AuthError, match="access denied") as info:
        raise_it(
            403, body(("DENIED", "requested access to the resource is denied")), credential=cred
        )
    assert "hunter2" not in str(info.value) + str(info.value.hint)


def test_404_names_what() -> None:
    with pytest.raises(NotFound, match=r"^repository reg.example/team/app not found$"):
        raise_it(404, body(("NAME_UNKNOWN", "repository name not known to registry")))
    with pytest.raises(NotFound, match=r"^tag v1 not found in reg.example/team/app$"):
        raise_it(404, body(("MANIFEST_UNKNOWN", "manifest unknown")))
    digest = "sha256:" + "a" * 64
    with pytest.raises(NotFound, match=rf"^blob {digest} not found in reg.example/team/app$"):
        raise_it(
            404,
            body(("BLOB_UNKNOWN", "blob unknown")),
            subject=Subject("reg.example", "team/app", "blob", digest),
        )
    with pytest.raises(NotFound, match=rf"^manifest {digest} not found"):
        raise_it(404, subject=Subject("reg.example", "team/app", "manifest", digest))


def test_429_reports_rate_limit_headers() -> None:
    headers = {"RateLimit-Limit": "100;w=21600", "RateLimit-Remaining": "0;w=21600"}
    with pytest.raises(RateLimited) as info:
        raise_it(429, b"", headers, attempts=6)
    text = str(info.value)
    assert "HTTP 429 after 6 attempts" in text
    assert "RateLimit-Limit: 100;w=21600" in text
    assert "RateLimit-Remaining: 0;w=21600" in text
    assert "secret" not in text


def test_other_errors_keep_status_and_codes() -> None:
    with pytest.raises(RegistryError) as info:
        raise_it(400, body(("MANIFEST_INVALID", "manifest invalid"), ("TAG_INVALID", "bad tag")))
    assert info.value.status == 400
    assert info.value.codes == ("MANIFEST_INVALID", "TAG_INVALID")
    assert str(info.value) == (
        "reg.example answered HTTP 400 to GET https://reg.example/v2/team/app/manifests/v1: "
        "manifest invalid; bad tag (MANIFEST_INVALID, TAG_INVALID)"
    )
    with pytest.raises(RegistryError, match=r"HTTP 500 .* after 3 attempts"):
        raise_it(500, b"", attempts=3)


def test_digest_invalid_is_an_integrity_error() -> None:
    with pytest.raises(IntegrityError, match="digest did not match"):
        raise_it(400, body(("DIGEST_INVALID", "provided digest did not match uploaded content")))


# -- TLS settings ---------------------------------------------------------------------------


def test_certs_dir_layout(tmp_path: Path) -> None:
    from tests.fixtures.pki import make_tls_files

    tls = make_tls_files(tmp_path / "pki")
    host_dir = tmp_path / "certs.d" / "localhost:5000"
    host_dir.mkdir(parents=True)
    (host_dir / "ca.crt").write_bytes(tls.ca_cert.read_bytes())
    (host_dir / "client.cert").write_bytes(tls.server_cert.read_bytes())
    (host_dir / "client.key").write_bytes(tls.server_key.read_bytes())
    assert certs_dirs_for("localhost:5000", [tmp_path / "certs.d"]) == [host_dir]
    assert certs_dirs_for("other:5000", [tmp_path / "certs.d"]) == []
    context = build_ssl_context("localhost:5000", certs_dirs=[tmp_path / "certs.d"])
    assert context.verify_mode == ssl.CERT_REQUIRED  # its CA trusted: test_trust_store.py
    (host_dir / "client.key").unlink()
    with pytest.raises(ConfigError, match=r"no matching key client\.key"):
        build_ssl_context("localhost:5000", certs_dirs=[tmp_path / "certs.d"])


def test_ca_cert_option_and_insecure(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot load CA certificate"):
        build_ssl_context("h", ca_cert=tmp_path / "missing.pem", certs_dirs=[])
    with pytest.warns(UserWarning, match="verification is disabled"):
        warn_insecure("unit-test-host:1")
    context = build_ssl_context("h", certs_dirs=[], insecure=True)
    assert context.verify_mode == ssl.CERT_NONE
    assert not context.check_hostname


# -- upload chunks --------------------------------------------------------------------------


def test_chunk_reader_reads_exactly_and_rewinds() -> None:
    data = b"0123456789"
    stream = io.BytesIO(data)
    stream.seek(2)
    hasher = Digest.of_bytes(b"").hasher()
    reader = _ChunkReader(stream, 5, hasher, "blob")
    assert reader.read(3) + reader.read(100) + reader.read(1) == b"23456"
    assert reader.tell() == 5
    reader.seek(0)
    assert reader.read() == b"23456"
    import hashlib

    assert reader.hasher.hexdigest() == hashlib.sha256(b"23456").hexdigest()


def test_chunk_reader_refuses_short_data() -> None:
    reader = _ChunkReader(io.BytesIO(b"abc"), 5, Digest.of_bytes(b"").hasher(), "blob x")
    reader.read(3)
    with pytest.raises(IntegrityError, match="ended after 3 of 5 bytes"):
        reader.read(2)


def test_describe_exception() -> None:
    wrapped = RuntimeError("<urllib3.x object at 0xdeadbeef>: wrapped")
    wrapped.__cause__ = ConnectionRefusedError(111, "Connection refused")
    assert describe_exception(wrapped) == "connection refused"
    assert describe_exception(ValueError("see https://u:p@h/x?sig=1")) == "see https://h/x"


HINT_HOST = "reg.example:5000"

# -- the login hint names options that exist ---------------------------------------------


def test_auth_hint_names_username_and_password_stdin() -> None:
    with pytest.raises(AuthError) as info:
        raise_for_status(
            401,
            Headers(),
            b"",
            subject=Subject(HINT_HOST, "team/app", "manifest", "1"),
            method="GET",
            url=f"https://{HINT_HOST}/v2/team/app/manifests/1",
        )
    assert info.value.hint == (
        f"run 'sneaker login {HINT_HOST}' or pass --username with --password-stdin "
        "(or the repository does not exist)"
    )
    pull_help = CliRunner().invoke(cli, ["pull", "--help"]).output
    assert "--username" in pull_help
    assert "--password-stdin" in pull_help
