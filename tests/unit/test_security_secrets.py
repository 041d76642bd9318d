"""Explicit credentials belong to one registry; secrets stay out of what sneaker prints."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from sneaker.cli.main import main
from sneaker.errors import UsageError
from sneaker.registry.options import RegistryOptions, check_explicit_credentials

PASSWORD = "hunter2-but-longer-and-unique"


def test_explicit_credentials_for_one_registry_only() -> None:
    with_password = RegistryOptions(username="me", password=PASSWORD)
    check_explicit_credentials(with_password, ["ghcr.io", "ghcr.io"])
    check_explicit_credentials(RegistryOptions(), ["ghcr.io", "quay.io"])
    check_explicit_credentials(None, ["ghcr.io", "quay.io"])
    with pytest.raises(UsageError, match=r"these images come from 2: ghcr\.io, quay\.io") as info:
        check_explicit_credentials(with_password, ["quay.io", "ghcr.io"])
    assert PASSWORD not in str(info.value)
    assert PASSWORD not in repr(with_password)


@pytest.mark.parametrize("verb", ["pull", "plan"])
def test_cli_refuses_a_password_for_several_registries(
    verb: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    extra = ["-o", str(tmp_path / ("plan" if verb == "plan" else "out.tar"))]
    code = main(
        [verb, "-q", "-u", "me", "--password-stdin", *extra, "ghcr.io/a/b:1", "quay.io/c/d:2"]
    )
    out, err = capsys.readouterr()
    assert code == UsageError.exit_code
    assert err.splitlines() == [
        "error: --username names one registry's account, and these images come from 2: "
        "ghcr.io, quay.io",
        "hint: pull from one registry at a time, or store each registry's credentials with "
        "'sneaker login REGISTRY'",
    ]
    assert PASSWORD not in out + err
    assert list(tmp_path.iterdir()) == []
