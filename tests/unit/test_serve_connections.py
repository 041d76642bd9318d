"""serve: no traceback when a client leaves mid-request; a busy port is a network error (exit 6).

These bind loopback sockets (port 0 or a socket the test holds), serving an empty OCI layout:
what is checked is the server's own behaviour, not any image.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sneaker.cli.main import main
from sneaker.errors import NetworkError
from sneaker.verbs.serve import RegistryServer


@pytest.fixture
def empty_layout(tmp_path: Path) -> Path:
    layout = tmp_path / "layout"
    layout.mkdir()
    (layout / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": []}))
    return layout


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A loopback port this test is listening on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        yield int(sock.getsockname()[1])


def _wait_for_connection(server: RegistryServer, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with server._httpd._conn_lock:
            if server._httpd._connections:
                return
        time.sleep(0.01)
    raise AssertionError("the server never accepted the connection")


def test_half_a_request_then_shutdown_prints_no_traceback(
    capfd: pytest.CaptureFixture[str],
) -> None:
    lines: list[str] = []
    server = RegistryServer([], "127.0.0.1:0", log=lines.append)
    server.start()
    with socket.create_connection(server.address, timeout=10) as client:
        client.sendall(b"GET /v2/ HTT")  # no end of line: the server is still reading it
        _wait_for_connection(server)
        server.shutdown()
    err = capfd.readouterr().err
    assert "Traceback" not in err
    assert "Exception occurred" not in err
    assert not [line for line in lines if "Traceback" in line or "BrokenPipe" in line]


def test_other_errors_are_one_log_line(capfd: pytest.CaptureFixture[str]) -> None:
    lines: list[str] = []
    server = RegistryServer([], "127.0.0.1:0", log=lines.append)
    try:
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            server._httpd.handle_error(None, ("127.0.0.1", 1234))
        try:
            raise ConnectionResetError("gone")
        except ConnectionResetError:
            server._httpd.handle_error(None, ("127.0.0.1", 1234))
    finally:
        server.shutdown()
    assert lines == ["127.0.0.1 error: RuntimeError: boom"]
    assert capfd.readouterr().err == ""


def test_ctrl_c_with_half_a_request_open_exits_cleanly(empty_layout: Path) -> None:
    """The reported case, through the CLI: ``GET /v2/ HTT``, then SIGINT."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "sneaker", "serve", str(empty_layout), "--addr", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        banner = proc.stdout.readline()  # click.echo flushes: the banner names the port
        assert " at http://127.0.0.1:" in banner, banner
        port = int(banner.split(" at http://127.0.0.1:", 1)[1].split()[0])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
            client.sendall(b"GET /v2/ HTT")
            time.sleep(0.3)  # let the server's thread start reading the request line
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert "Exception occurred" not in err
    assert "BrokenPipeError" not in err


def test_a_busy_port_is_a_network_error(busy_port: int) -> None:
    with pytest.raises(NetworkError) as caught:
        RegistryServer([], f"127.0.0.1:{busy_port}")
    assert caught.value.exit_code == 6
    assert caught.value.message.startswith(f"cannot listen on 127.0.0.1:{busy_port}: ")
    assert caught.value.hint is not None
    assert "another port" in caught.value.hint


def test_a_busy_port_exits_6_through_the_cli(
    empty_layout: Path, busy_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["serve", str(empty_layout), "--addr", f"127.0.0.1:{busy_port}"])
    err = capsys.readouterr().err.splitlines()
    assert code == 6
    assert err[0].startswith(f"error: cannot listen on 127.0.0.1:{busy_port}: ")
    assert err[1] == "hint: another program listens there: pick another port with --addr HOST:PORT"
