"""kill -9 in the middle of writing an archive: the next run into the directory cleans up.

A pull killed by SIGKILL cannot remove its hidden temporary archive (nor, with
``--no-cache``, its temporary cache beside it); those were 300-860 MB each in the issue,
and nothing removed them. Their names carry the owner's pid (tests/unit/test_temp_files.py
covers the rules), so the next sneaker writing into the same directory removes them once
their owner is gone. The layers come through a throttling proxy so the kill lands while
the archive is being written.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.fixtures import shaping
from tests.fixtures.registry import RegistryInfo
from tests.fixtures.seeding import Seeded
from tests.helpers import sneaker

pytestmark = pytest.mark.integration

shaping_proxy = shaping.shaping_proxy  # the fixture, made visible to this module


def hidden(directory: Path) -> list[str]:
    return sorted(name for name in os.listdir(directory) if name.startswith("."))


@pytest.mark.parametrize("cache", ["cache", "no-cache"])
def test_the_temporary_files_of_a_pull_killed_mid_write_are_removed_by_the_next(
    seeded: Seeded,
    registry: RegistryInfo,
    shaping_proxy: Callable[..., shaping.ShapingProxy],
    env: dict[str, str],
    tmp_path: Path,
    cache: str,
) -> None:
    proxy = shaping_proxy(registry.url)
    proxy.shape("throttle", path_contains="/blobs/", rate=50_000)
    ref = f"{proxy.host}/{seeded.app.repository}:{seeded.app.tag}"
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "app.tar"
    extra = ["--no-cache"] if cache == "no-cache" else []
    process = subprocess.Popen(
        [sys.executable, "-m", "sneaker", "pull", "-q", *extra, ref, "-o", str(out)],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while not any(n.startswith(".app.tar.") and n.endswith(".tmp") for n in hidden(out_dir)):
            assert process.poll() is None, process.communicate()[1]
            assert time.monotonic() < deadline, "the archive write did not start"
            time.sleep(0.05)
        time.sleep(0.5)  # well into the write
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    left = hidden(out_dir)
    assert f".app.tar.sneaker-{process.pid}-" in "".join(left), left
    if cache == "no-cache":
        assert any(n.startswith(".sneaker-blobs.sneaker-") for n in left), left
    assert not out.exists()

    proxy.unshape()
    sneaker("pull", "-q", *extra, ref, "-o", out, env=env)
    assert os.listdir(out_dir) == ["app.tar"], "the killed run's temporary files are gone"
