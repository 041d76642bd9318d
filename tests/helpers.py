"""Small helpers shared by sneaker's tests: tool lookup, ports, waiting, subprocesses.

The one rule that matters most lives here: an integration test never skips in CI
for a missing tool. ``need()`` fails the test when ``CI=true`` and skips it only
on a developer's machine. Every skip for a missing tool or capability goes
through ``need()`` (or ``unavailable()``, which it uses).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent

# Tools such as dockerd live in sbin directories that are not always on PATH.
_EXTRA_TOOL_DIRS = ("/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin", "/bin")

# Debian's docker.io client (20.10) matches the daemon the tests start; a newer
# client elsewhere on PATH may speak an API version the daemon does not.
DEBIAN_DOCKER_CLIENT = Path("/usr/bin/docker")


def in_ci() -> bool:
    """True when running under CI (``CI=true``), where nothing may be skipped."""
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def isolated_env(
    root: Path, *, cache: str = "cache", inherit: bool = False, **extra: str
) -> dict[str, str]:
    """Environment for a sneaker subprocess into which nothing of this machine leaks: an
    empty docker config, no podman or skopeo login (``XDG_RUNTIME_DIR`` and
    ``XDG_CONFIG_HOME`` of its own, no ``REGISTRY_AUTH_FILE``), a cache of its own
    (``root/cache``), no registries.conf and no daemon.json; ``extra`` is added.
    ``inherit`` starts from this process's environment without its proxy variables,
    for a subprocess given exactly this environment."""
    config = root / "docker-config"
    config.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()} if inherit else {}
    env.update(
        {
            "DOCKER_CONFIG": str(config),
            "XDG_RUNTIME_DIR": str(root / "xdg-run"),
            "XDG_CONFIG_HOME": str(root / "xdg-config"),
            "REGISTRY_AUTH_FILE": "",
            "SNEAKER_CACHE_DIR": str(root / cache),
            "CONTAINERS_REGISTRIES_CONF": str(root / "no-registries.conf"),
            "SNEAKER_DAEMON_JSON": "",
            **extra,
        }
    )
    return env


def unavailable(reason: str) -> NoReturn:
    """Fail the current test under CI, skip it elsewhere."""
    if in_ci():
        pytest.fail(
            f"{reason} (CI=true: missing prerequisites fail instead of skipping)", pytrace=False
        )
    pytest.skip(reason)


def find_tool(tool: str) -> str | None:
    """Absolute path of ``tool`` from PATH or the usual sbin/bin directories."""
    found = shutil.which(tool)
    if found:
        return os.path.abspath(found)
    for directory in _EXTRA_TOOL_DIRS:
        candidate = Path(directory) / tool
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def need(tool: str) -> str:
    """Absolute path of ``tool``; fails under CI and skips elsewhere when it is missing."""
    path = find_tool(tool)
    if path is None:
        unavailable(f"required tool {tool!r} is not installed (scripts/test installs it)")
    return path


def need_root() -> None:
    """Daemons such as dockerd and containerd need root here."""
    if os.geteuid() != 0:
        unavailable("this test starts daemons that need root")


def docker_bin() -> str:
    """The docker client to use: Debian's 20.10 client when present, else PATH's."""
    if DEBIAN_DOCKER_CLIENT.is_file() and os.access(DEBIAN_DOCKER_CLIENT, os.X_OK):
        return str(DEBIAN_DOCKER_CLIENT)
    return need("docker")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago on ``host``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class WaitTimeout(AssertionError):
    """Raised when something a test waits for did not happen in time."""


def wait_until(
    predicate: Callable[[], bool],
    *,
    timeout: float = 30.0,
    interval: float = 0.1,
    what: str = "condition",
    diagnostics: Callable[[], str] | None = None,
) -> None:
    """Poll ``predicate`` until it is true; raise WaitTimeout with diagnostics otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return
        if time.monotonic() >= deadline:
            extra = f"\n{diagnostics()}" if diagnostics else ""
            raise WaitTimeout(f"timed out after {timeout:.0f}s waiting for {what}{extra}")
        time.sleep(interval)


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def wait_for_port(
    host: str,
    port: int,
    *,
    timeout: float = 30.0,
    alive: Callable[[], bool] | None = None,
    diagnostics: Callable[[], str] | None = None,
) -> None:
    """Wait until something accepts TCP connections on ``host:port``.

    ``alive`` (e.g. a process's poll) stops the wait early when the server died.
    """

    def ready() -> bool:
        if alive is not None and not alive():
            extra = f"\n{diagnostics()}" if diagnostics else ""
            raise WaitTimeout(f"server for {host}:{port} exited before listening{extra}")
        return port_open(host, port)

    wait_until(
        ready, timeout=timeout, what=f"{host}:{port} to accept connections", diagnostics=diagnostics
    )


def urlopen(
    request: urllib.request.Request | str,
    *,
    timeout: float = 30.0,
    ssl_context: ssl.SSLContext | None = None,
) -> Any:
    """``urllib.request.urlopen`` that never goes through a proxy (tests talk to loopback)."""
    handlers: list[urllib.request.BaseHandler] = [urllib.request.ProxyHandler({})]
    if ssl_context is not None:
        handlers.append(urllib.request.HTTPSHandler(context=ssl_context))
    return urllib.request.build_opener(*handlers).open(request, timeout=timeout)


def http_request(
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    data: bytes | None = None,
    method: str | None = None,
    ssl_context: ssl.SSLContext | None = None,
    timeout: float = 30.0,
) -> tuple[int, dict[str, str], bytes]:
    """One request without a proxy: (status, headers with lower-case names, body), errors too."""
    request = urllib.request.Request(url, data=data, headers=dict(headers or {}), method=method)
    try:
        with urlopen(request, timeout=timeout, ssl_context=ssl_context) as response:
            answer = {k.lower(): v for k, v in response.headers.items()}
            return response.status, answer, response.read()
    except urllib.error.HTTPError as err:
        return err.code, {k.lower(): v for k, v in err.headers.items()}, err.read()


def http_status(
    url: str, *, ssl_context: ssl.SSLContext | None = None, timeout: float = 5.0
) -> int | None:
    """Status code of a GET to ``url``, or None when no HTTP answer came back."""
    request = urllib.request.Request(url, method="GET")
    try:
        with urlopen(request, timeout=timeout, ssl_context=ssl_context) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as err:
        return err.code
    except (urllib.error.URLError, OSError):
        return None


def wait_http(
    url: str,
    *,
    statuses: Iterable[int] = (200,),
    timeout: float = 30.0,
    ssl_context: ssl.SSLContext | None = None,
    alive: Callable[[], bool] | None = None,
    diagnostics: Callable[[], str] | None = None,
) -> int:
    """Wait until a GET to ``url`` answers with one of ``statuses``; return that status."""
    wanted = set(statuses)
    seen: list[int | None] = []

    def ready() -> bool:
        if alive is not None and not alive():
            extra = f"\n{diagnostics()}" if diagnostics else ""
            raise WaitTimeout(f"server for {url} exited before answering{extra}")
        status = http_status(url, ssl_context=ssl_context)
        seen.append(status)
        return status in wanted

    def more() -> str:
        last = seen[-1] if seen else None
        base = f"last status: {last}"
        return f"{base}\n{diagnostics()}" if diagnostics else base

    wait_until(ready, timeout=timeout, what=f"{url} to answer {sorted(wanted)}", diagnostics=more)
    status = seen[-1]
    assert status is not None
    return status


class CommandError(AssertionError):
    """A command run by ``run()`` failed; the message carries its output."""

    def __init__(self, cmd: Sequence[str], returncode: int, stdout: str, stderr: str) -> None:
        self.cmd = list(cmd)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        super().__init__(
            f"command failed with exit code {returncode}: {shlex.join(self.cmd)}\n"
            f"--- stdout ---\n{_clip(stdout)}\n--- stderr ---\n{_clip(stderr)}"
        )


def _clip(text: str, limit: int = 8000) -> str:
    if len(text) <= limit:
        return text
    return f"[... {len(text) - limit} characters cut ...]\n{text[-limit:]}"


def run(
    cmd: Sequence[str | os.PathLike[str]],
    *,
    input: bytes | str | None = None,
    check: bool = True,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    timeout: float = 300.0,
) -> subprocess.CompletedProcess[str]:
    """Run ``cmd``, capturing output as text; raise CommandError (with output) on failure.

    ``env`` entries are added to the current environment rather than replacing it.
    ``input`` may be bytes (e.g. an archive) or text.
    """
    argv = [os.fspath(part) for part in cmd]
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    data = input.encode() if isinstance(input, str) else input
    try:
        proc = subprocess.run(
            argv,
            input=data,
            stdin=subprocess.DEVNULL if data is None else None,
            capture_output=True,
            env=full_env,
            cwd=cwd,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as err:
        out = (err.stdout or b"").decode(errors="replace")
        errout = (err.stderr or b"").decode(errors="replace")
        raise CommandError(argv, -1, out, f"{errout}\n[timed out after {timeout}s]") from err
    stdout = proc.stdout.decode(errors="replace")
    stderr = proc.stderr.decode(errors="replace")
    if check and proc.returncode != 0:
        raise CommandError(argv, proc.returncode, stdout, stderr)
    return subprocess.CompletedProcess(argv, proc.returncode, stdout, stderr)


def read_tail(path: Path, limit: int = 6000) -> str:
    """The end of a log file, for error messages."""
    with contextlib.suppress(OSError):
        text = path.read_text(errors="replace")
        return f"--- {path.name} (tail) ---\n{_clip(text, limit)}"
    return f"--- {path.name}: unreadable ---"


def sneaker(
    *args: str | os.PathLike[str],
    check: bool = True,
    input: bytes | str | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 600.0,
) -> subprocess.CompletedProcess[str]:
    """Run the ``sneaker`` CLI in a fresh interpreter (``python -m sneaker ARGS...``)."""
    import sys

    return run(
        [sys.executable, "-m", "sneaker", *(str(a) for a in args)],
        check=check,
        input=input,
        env=env,
        cwd=cwd,
        timeout=timeout,
    )
