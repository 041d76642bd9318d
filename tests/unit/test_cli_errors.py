"""The CLI renders every sneaker error as one line plus an optional hint, never a traceback."""

from __future__ import annotations

import pytest

from sneaker.cli.main import main
from sneaker.errors import (
    ArchiveError,
    AuthError,
    ConfigError,
    IntegrityError,
    Interrupted,
    NetworkError,
    NotFound,
    SneakerError,
    UnsupportedError,
    UsageError,
)


@pytest.mark.parametrize(
    ("cls", "code"),
    [
        (SneakerError, 1),
        (UsageError, 2),
        (ConfigError, 3),
        (AuthError, 4),
        (NotFound, 5),
        (NetworkError, 6),
        (IntegrityError, 7),
        (ArchiveError, 8),
        (UnsupportedError, 9),
        (Interrupted, 130),
    ],
)
def test_exit_codes_are_documented(cls: type[SneakerError], code: int) -> None:
    assert cls.exit_code == code


def test_bad_reference_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["pull", "Ubuntu", "-q"])
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    assert err == "error: invalid reference 'Ubuntu': repository name must be lowercase\n"


def test_bad_platform_has_hint(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["pull", "ubuntu", "--platform", "linux", "-q"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.splitlines() == [
        "error: invalid platform 'linux'",
        "hint: use os/arch or os/arch/variant, e.g. linux/amd64 or linux/arm/v7",
    ]


def test_docker_format_refuses_several_platforms(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["pull", "ubuntu", "--platform", "all", "-q"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.splitlines() == [
        "error: a docker archive holds one platform per image, and all asks for more",
        "hint: use --format oci to keep several platforms",
    ]


def test_several_images_need_output(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["pull", "a", "b", "-q"])
    assert code == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: several images need an output name",
        "hint: give one with -o FILE.tar",
    ]


def test_usage_errors_from_click_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["nosuchverb"]) == 2
    assert capsys.readouterr().err == "error: No such command 'nosuchverb'.\n"
    assert main(["pull", "--format", "zip", "x"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: Invalid value for '--format'")
    assert len(err.splitlines()) == 1


def test_password_stdin_needs_username(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pull", "x", "--password-stdin"]) == 2
    assert capsys.readouterr().err == "error: --password-stdin needs --username\n"


def test_version_names_speedups(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("sneaker 0.1.0 (Python ")
    assert "speed-ups: " in out


def test_docker_archive_into_a_directory_is_refused(
    tmp_path: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["pull", "-q", "x", "-o", f"{tmp_path}/"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: {tmp_path}/ is a directory, and a docker archive is a file",
        "hint: name the file with -o (e.g. -o images.tar), or use --format oci for a layout "
        "directory",
    ]


def test_no_arguments_print_the_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Usage: sneaker [OPTIONS] COMMAND [ARGS]...\n")
    assert "\n  pull " in out


def test_stdin_cannot_carry_both_list_and_password(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pull", "-f", "-", "-u", "me", "--password-stdin"]) == 2
    assert capsys.readouterr().err.splitlines()[0] == (
        "error: -f - and --password-stdin both read standard input"
    )


def test_delta_may_not_overwrite_its_base(
    tmp_path: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    import tarfile
    from pathlib import Path

    base = Path(str(tmp_path)) / "base.tar"
    with tarfile.open(base, "w"):
        pass
    assert main(["pull", "-q", "--since", str(base), "x", "-o", str(base)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0] == f"error: cannot write {base}: it would replace the input {base}"
    assert base.stat().st_size > 0


def test_output_that_is_not_a_file_is_refused_before_any_download(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # no registry answers for "x": the refusal must come first
    assert main(["pull", "-q", "x", "-o", "/dev/null"]) == 2
    assert capsys.readouterr().err.splitlines()[0] == (
        "error: cannot write /dev/null: it is a character device"
    )
    assert main(["pull", "-q", "x", "-o", "/nonexistent-dir/x.tar"]) == 2
    assert capsys.readouterr().err.splitlines()[0] == (
        "error: cannot write /nonexistent-dir/x.tar: directory /nonexistent-dir does not exist"
    )


def test_referrers_need_an_oci_archive(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["pull", "ubuntu", "--referrers", "--format", "docker", "-q"])
    assert code == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: --referrers needs an OCI archive: signatures, attestations and SBOMs are OCI "
        "artifacts, which a docker archive does not hold",
        "hint: use --format oci (the default with --referrers)",
    ]


def test_referrers_bounds_need_referrers(capsys: pytest.CaptureFixture[str]) -> None:
    for extra in (["--referrers-type", "application/spdx+json"], ["--referrers-max", "3"]):
        assert main(["pull", "ubuntu", *extra, "-q"]) == 2
        assert capsys.readouterr().err.splitlines()[0] == (
            "error: --referrers-type, --referrers-depth and --referrers-max apply with --referrers"
        )


def test_referrers_help_shows_the_defaults() -> None:
    from click.testing import CliRunner

    from sneaker.cli.main import cli
    from sneaker.transfer.referrers import DEFAULT_DEPTH, DEFAULT_LIMIT

    for verb in ("pull", "plan"):
        text = " ".join(CliRunner().invoke(cli, [verb, "--help"]).output.split())
        assert f"Follow referrers of referrers N levels down. [default: {DEFAULT_DEPTH}]" in text
        assert f"Take at most N referrers per image. [default: {DEFAULT_LIMIT}]" in text
