"""``-v``: one line per HTTP request on stderr, auth steps included, and never a secret.

Pulls through the real CLI from the token-auth registry (distribution 2.8 and the token
server fixture, which keeps every token it issued) and from a mirror set up with a second
registry; the whole stderr, and that of ``--debug``, is searched for the password, its
Basic encoding and every bearer token the server issued.
"""

from __future__ import annotations

import base64
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.fixtures.registry import RegistryInfo, TokenRegistryInfo
from tests.fixtures.seeding import Seeded
from tests.fixtures.tools import skopeo
from tests.helpers import isolated_env, sneaker

pytestmark = pytest.mark.integration

MakeRegistry = Callable[..., RegistryInfo]

#: ``GET URL -> 200, 1.2 kB in 3 ms (notes)``: the shape of an answered request's line
ANSWERED = re.compile(r"^(GET|HEAD|POST|PUT|PATCH|DELETE) (https?://\S+) -> (\d{3})(, .+?)? in ")


def request_lines(stderr: str) -> list[tuple[str, str, int, str]]:
    """(method, URL, status, whole line) of each request line."""
    found = []
    for line in stderr.splitlines():
        match = ANSWERED.match(line)
        if match:
            found.append((match[1], match[2], int(match[3]), line))
    return found


def assert_hidden(output: str, secrets: list[str]) -> None:
    for secret in secrets:
        assert secret, "an empty secret proves nothing"
        assert secret not in output
        if len(secret) > 24:
            assert secret[-16:] not in output  # nor the end of one (a token's signature)


def private_pull(
    token_registry: TokenRegistryInfo, seeded: Seeded, tmp_path: Path, *flags: str
) -> subprocess.CompletedProcess[str]:
    user, password = token_registry.username, token_registry.password
    assert user
    assert password
    return sneaker(
        *flags, "pull", "-q", "-v", "-o", tmp_path / f"out{len(flags)}.tar",
        "--username", user, "--password-stdin", seeded.token_private.ref,
        env=isolated_env(tmp_path, cache=f"cache{len(flags)}", inherit=True),
        input=password + "\n", timeout=300,
    )  # fmt: skip


def test_verbose_pull_with_token_auth_logs_each_request_and_no_secret(
    token_registry: TokenRegistryInfo, seeded: Seeded, tmp_path: Path
) -> None:
    server = token_registry.server
    server.clear_requests()
    done = private_pull(token_registry, seeded, tmp_path)
    debug = private_pull(token_registry, seeded, tmp_path, "--debug")

    for result in (done, debug):
        lines = request_lines(result.stderr)
        host = token_registry.host
        # the registry's challenge, whether it answered a ping or the first request
        challenged = [line for _, url, status, line in lines if status == 401 and host in url]
        assert challenged
        assert f'challenge Bearer realm="{token_registry.realm}"' in challenged[0]
        # the token: for which scope, from which realm, sent how (the password never)
        tokens = [line for _, url, _, line in lines if url == token_registry.realm]
        assert tokens
        assert all("-> 200" in line for line in tokens)
        assert "token for repository:private/app:pull" in tokens[0]
        assert "with Basic credentials" in tokens[0]
        # the manifest and every blob, answered with the bearer token
        repo = f"http://{host}/v2/private/app"
        manifests = [line for _, url, s, line in lines if url.startswith(f"{repo}/manifests/")]
        assert any("-> 200" in line and "with a Bearer token" in line for line in manifests)
        blobs = {url.rsplit("/", 1)[1] for m, url, s, _ in lines if "/blobs/" in url and s == 200}
        assert seeded.token_private.config_digest in blobs
        assert len(blobs) >= 2  # the config and the layers
        assert all(re.search(r" in \d+(\.\d)? m?s\b", line) for *_, line in lines)

    # --debug: the trace's level of detail, still no secret
    assert len(request_lines(debug.stderr)) >= len(request_lines(done.stderr))
    issued = list(server.tokens)
    assert len(issued) >= 2  # one per run at least: both runs were checked against real tokens
    user, password = token_registry.username, token_registry.password
    assert user
    assert password
    basic = base64.b64encode(f"{user}:{password}".encode()).decode()
    for result in (done, debug):
        assert_hidden(result.stdout + result.stderr, [password, basic, *issued])


def test_verbose_pull_shows_which_mirror_answered_and_the_fallback(
    make_registry: MakeRegistry, registry: RegistryInfo, seeded: Seeded, tmp_path: Path
) -> None:
    mirror, empty = make_registry(), make_registry()
    skopeo(
        "copy", "--preserve-digests", "--src-tls-verify=false", "--dest-tls-verify=false",
        f"docker://{registry.host}/test/small:1", f"docker://{mirror.host}/test/small:1",
    )  # fmt: skip
    env = isolated_env(tmp_path, inherit=True)
    ref = seeded.small.ref

    served = sneaker(
        "pull", "-q", "-v", "--mirror", f"{registry.host}={mirror.host}",
        "-o", tmp_path / "a.tar", ref, env=env,
    )  # fmt: skip
    lines = request_lines(served.stderr)
    from_mirror = [(url, status) for _, url, status, _ in lines if mirror.host in url]
    assert (f"http://{mirror.host}/v2/test/small/manifests/1", 200) in from_mirror
    assert any("/blobs/" in url and status == 200 for url, status in from_mirror)
    assert f"from mirror {mirror.host}/test/small" in served.stderr

    fell_back = sneaker(
        "pull", "-q", "-v", "--mirror", f"{registry.host}={empty.host}",
        "--cache-dir", tmp_path / "other-cache", "-o", tmp_path / "b.tar", ref, env=env,
    )  # fmt: skip
    lines = request_lines(fell_back.stderr)
    statuses = {
        (url.split("/v2/")[0], status) for _, url, status, _ in lines if "/manifests/" in url
    }
    assert (f"http://{empty.host}", 404) in statuses
    assert (f"http://{registry.host}", 200) in statuses
    assert f"mirror {empty.host}/test/small: tag 1 not found" in fell_back.stderr
    assert "trying the next one" in fell_back.stderr


def test_without_verbose_no_request_is_logged(
    registry: RegistryInfo, seeded: Seeded, tmp_path: Path
) -> None:
    quiet = sneaker(
        "pull", "-q", "-o", tmp_path / "a.tar", seeded.small.ref,
        env=isolated_env(tmp_path, inherit=True),
    )  # fmt: skip
    assert quiet.stderr == ""
    assert request_lines(quiet.stdout) == []
