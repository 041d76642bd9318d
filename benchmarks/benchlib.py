"""What the benchmark scripts share: running a timed command, cleaning between runs,
and starting sneaker as an installed command starts.

A library for ``bench_pull.py`` and ``bench_wan.py``, not a script.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def log(text: str) -> None:
    """Progress, on stderr (the tables go to stdout)."""
    print(text, file=sys.stderr, flush=True)


def run_timed(argv: list[str], env: dict[str, str] | None = None, timeout: float = 1800) -> float:
    """Run ``argv`` to completion; its wall time in seconds. A failure ends the benchmark."""
    start = time.perf_counter()
    proc = subprocess.run(
        argv, env=env, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, check=False
    )
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(
            f"failed ({proc.returncode}): {' '.join(argv)}\n"
            f"{proc.stdout.decode(errors='replace')[-3000:]}"
            f"{proc.stderr.decode(errors='replace')[-3000:]}"
        )
    return elapsed


def cleaner(*paths: Path) -> Callable[[], None]:
    """A function that deletes ``paths`` (files or directories) when they exist."""

    def clean() -> None:
        for path in paths:
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()

    return clean


def sneaker_argv() -> list[str]:
    """The console script next to this Python, as a user runs it (else ``-m sneaker``)."""
    script = Path(sys.executable).with_name("sneaker")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "sneaker"]


def sneaker_env(work: Path) -> dict[str, str]:
    """As an installed sneaker runs: with byte code cached (kept out of the source tree),
    no proxy variables, and a docker config directory of its own (no stored credentials)."""
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
    env["DOCKER_CONFIG"] = str(work / "docker-config")
    (work / "docker-config").mkdir(exist_ok=True)
    return env


def module_argv(src: Path) -> tuple[list[str], dict[str, str]]:
    """``python -m sneaker`` from the source tree ``src`` (for side-by-side runs): the
    command and what to add to its environment."""
    return [sys.executable, "-m", "sneaker"], {"PYTHONPATH": str(src.resolve())}
