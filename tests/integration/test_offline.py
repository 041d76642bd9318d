"""Failing fast and clearly where a registry cannot be reached: a name that does not
resolve is not retried (one ``error:`` line naming the host, well under 2 s), a refused
connection is retried for about a second only, and through mirrors the error names every
endpoint tried and what each answered.

Names under ``.invalid`` (RFC 6761) never resolve: the real resolver answers them. The
mirror is a real, empty docker-registry.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sneaker.errors import NetworkError
from sneaker.registry.messages import Request
from sneaker.registry.options import RegistryOptions
from sneaker.registry.transport import Transport
from tests.fixtures.registry import MakeRegistry
from tests.helpers import isolated_env, sneaker

pytestmark = pytest.mark.integration

UNRESOLVABLE = "no-such-registry.invalid"
#: what the resolver says of a .invalid name: NXDOMAIN, or no network at all here
NOT_RESOLVED = ("no such host", "no network (this machine has no route to the internet)")


@pytest.fixture
def dead_host() -> Iterator[str]:
    """``127.0.0.1:PORT``, bound but not listening: connections are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"127.0.0.1:{sock.getsockname()[1]}"


def timed_pull(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    done = sneaker("pull", *args, check=False, env=isolated_env(tmp_path), cwd=tmp_path)
    return done, time.monotonic() - started


def error_lines(done: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in done.stderr.splitlines() if line.startswith(("error:", "hint:"))]


def one_of(template: str) -> list[str]:
    return [template.format(reason=reason) for reason in NOT_RESOLVED]


def test_pull_from_a_name_that_does_not_resolve_fails_at_once(tmp_path: Path) -> None:
    done, elapsed = timed_pull(tmp_path, f"{UNRESOLVABLE}/team/app:1", "-o", "app.tar")
    assert done.returncode == NetworkError.exit_code
    error, hint = error_lines(done)
    assert error in one_of(f"error: cannot resolve {UNRESOLVABLE}: {{reason}}")
    assert hint.startswith("hint: ")
    assert "Traceback" not in done.stderr
    assert elapsed < 2.0, f"{elapsed:.2f} s"
    assert not (tmp_path / "app.tar").exists()


def test_an_api_host_that_does_not_resolve_is_named_with_its_registry() -> None:
    slept: list[float] = []
    transport = Transport(
        f"api.{UNRESOLVABLE}", RegistryOptions(retries=5), sleep=slept.append, name=UNRESOLVABLE
    )
    with pytest.raises(NetworkError) as info:
        transport.send(Request("GET", transport.url("/v2/")))
    assert info.value.message in one_of(
        f"cannot resolve api.{UNRESOLVABLE} (the API host of {UNRESOLVABLE}): {{reason}}"
    )
    assert slept == []


def test_a_refused_connection_is_retried_for_about_a_second(tmp_path: Path, dead_host: str) -> None:
    done, elapsed = timed_pull(tmp_path, f"{dead_host}/team/app:1", "-o", "app.tar")
    assert done.returncode == NetworkError.exit_code
    assert error_lines(done) == [
        f"error: cannot connect to {dead_host}: connection refused over https and http "
        "(after 6 attempts)",
        f"hint: is a registry listening at {dead_host}?",
    ]
    assert elapsed < 3.0, f"{elapsed:.2f} s"  # five brief waits: at most 1.15 s of them


def test_a_mirror_without_the_image_and_an_origin_that_does_not_resolve(
    tmp_path: Path, make_registry: MakeRegistry
) -> None:
    empty = make_registry()
    ref = f"{UNRESOLVABLE}/team/app:1"
    done, elapsed = timed_pull(tmp_path, "--mirror", f"{UNRESOLVABLE}={empty.host}", ref)
    assert done.returncode == NetworkError.exit_code
    error, _hint = error_lines(done)
    mirror_said = f"mirror {empty.host}/team/app: tag 1 not found in {empty.host}/team/app"
    assert error in one_of(
        f"error: cannot resolve {UNRESOLVABLE}: {{reason}} (tried first: {mirror_said})"
    )
    assert elapsed < 2.0, f"{elapsed:.2f} s"


def test_every_endpoint_tried_is_named_with_what_it_said(
    tmp_path: Path, make_registry: MakeRegistry, dead_host: str
) -> None:
    empty = make_registry()
    ref = f"{UNRESOLVABLE}/team/app:1"
    done, _ = timed_pull(
        tmp_path,
        "--mirror", f"{UNRESOLVABLE}={dead_host}",
        "--mirror", f"{UNRESOLVABLE}={empty.host}",
        ref,
    )  # fmt: skip
    assert done.returncode == NetworkError.exit_code
    error, _hint = error_lines(done)
    down = (
        f"mirror {dead_host}/team/app: cannot connect to {dead_host}: connection refused "
        "over https and http (after 2 attempts)"
    )
    empty_said = f"mirror {empty.host}/team/app: tag 1 not found in {empty.host}/team/app"
    assert error in one_of(
        f"error: cannot resolve {UNRESOLVABLE}: {{reason}} (tried first: {down}; {empty_said})"
    )
