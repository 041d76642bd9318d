"""What unpacking writes is bounded, not only what it decompresses (docs/security.md).

A sparse file in a layer tar (GNU sparse, PAX sparse 0.0, 0.1 and 1.0) describes its holes
in a few bytes: the issue's 8 KB layer unpacked to 2.1 GB of zeros. Files count at their
full size against the layer's cap, and all the layers of an image against a total;
``verify --deep`` counts the same way. The tars are made by GNU tar and, for the PAX
variants, also by hand, so that the reader is not only checked against one writer.
"""

from __future__ import annotations

import io
import os
import tarfile
import time
from pathlib import Path

import pytest

from sneaker.archive import open_archive
from sneaker.cli.main import main
from sneaker.errors import IntegrityError
from sneaker.layers.apply import LayerApplier, LayerLimits
from sneaker.verbs.unpack import unpack
from sneaker.verbs.verify import verify
from tests.helpers import need, run
from tests.unit.test_verify import REF, Layout

#: the issue's case: a sparse file of 2.1 GB holding a few kB of data
HUGE = 2100 << 20
DATA = b"sparse data " * 340  # 4080 bytes
FORMATS = ["gnu", "0.0", "0.1", "1.0"]


def gnu_tar_sparse(tmp_path: Path, fmt: str, size: int, data_at: int) -> bytes:
    """A tar of one sparse file (``size`` bytes, DATA at ``data_at``) made by GNU tar."""
    src = tmp_path / f"src-{fmt}"
    src.mkdir()
    with (src / "holes").open("wb") as handle:
        handle.truncate(size)
        handle.seek(data_at)
        handle.write(DATA)
    layout = ["--format=gnu"] if fmt == "gnu" else ["--format=posix", f"--sparse-version={fmt}"]
    out = tmp_path / f"{fmt}.tar"
    run([need("tar"), "--sparse", *layout, "-cf", out, "-C", src, "holes"])
    data = out.read_bytes()
    out.unlink()
    (src / "holes").unlink()
    src.rmdir()
    return data


def _pax_record(key: str, value: str) -> bytes:
    body = f" {key}={value}\n".encode()
    length = len(body) + 1
    while len(str(length)) + len(body) != length:
        length += 1
    return str(length).encode() + body


def _block(data: bytes) -> bytes:
    return data + bytes(-len(data) % 512)


def hand_pax_sparse(version: str, size: int, data_at: int) -> bytes:
    """A PAX sparse tar of one file, headers written here: ``size`` bytes, DATA at
    ``data_at`` (0.0: repeated offset/numbytes records; 0.1: a map record; 1.0: the
    map at the start of the data)."""
    name = "holes"
    stored = DATA
    if version == "0.0":
        records = [("GNU.sparse.size", str(size)), ("GNU.sparse.numblocks", "1")]
        records += [("GNU.sparse.offset", str(data_at)), ("GNU.sparse.numbytes", str(len(DATA)))]
    elif version == "0.1":
        records = [
            ("GNU.sparse.size", str(size)),
            ("GNU.sparse.numblocks", "1"),
            ("GNU.sparse.map", f"{data_at},{len(DATA)}"),
        ]
    else:
        records = [
            ("GNU.sparse.major", "1"),
            ("GNU.sparse.minor", "0"),
            ("GNU.sparse.name", name),
            ("GNU.sparse.realsize", str(size)),
        ]
        stored = _block(f"1\n{data_at}\n{len(DATA)}\n".encode()) + DATA
        name = "GNUSparseFile.0/holes"
    payload = b"".join(_pax_record(k, v) for k, v in records)
    extended = tarfile.TarInfo(f"PaxHeaders/{name}")
    extended.type = tarfile.XHDTYPE
    extended.size = len(payload)
    member = tarfile.TarInfo(name)
    member.size = len(stored)
    member.mode = 0o644
    return (
        extended.tobuf(tarfile.USTAR_FORMAT)
        + _block(payload)
        + member.tobuf(tarfile.USTAR_FORMAT)
        + _block(stored)
        + bytes(1024)
    )


def image_of(tmp_path: Path, *tars: bytes) -> Path:
    layout = Layout(tmp_path / "layout")
    layout.name(layout.image([], tars=list(tars)), REF)
    return layout.root


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_few_kb_of_sparse_tar_that_would_write_gigabytes_is_refused_at_once(
    tmp_path: Path, fmt: str
) -> None:
    tar = gnu_tar_sparse(tmp_path, fmt, HUGE, data_at=1_000_000)
    root = image_of(tmp_path, tar)
    compressed = next((root / "blobs" / "sha256").iterdir())
    started = time.monotonic()
    with (
        open_archive(root) as source,
        pytest.raises(IntegrityError, match="a sparse file of 2,202,009,600 bytes") as info,
    ):
        unpack(source, tmp_path / "rootfs")
    took = time.monotonic() - started
    assert "takes the layer past the 1,073,741,824 bytes one layer may write" in str(info.value)
    assert "--max-layer-size SIZE" in (info.value.hint or "")
    assert took < 5, f"refused only after {took:.1f} s: bytes were written first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["layout"], "nothing is left"
    assert len(tar) <= 20480  # the ratio
    assert os.path.getsize(compressed) < 1024

    with open_archive(root) as source:
        (problem,) = verify(source, deep=True)
    assert "'holes' (a sparse file of 2,202,009,600 bytes) takes the layer past" in problem
    assert "--max-layer-size SIZE" in problem


@pytest.mark.parametrize("version", ["0.0", "0.1", "1.0"])
def test_hand_made_pax_sparse_files_count_at_full_size(tmp_path: Path, version: str) -> None:
    tar = hand_pax_sparse(version, 8 << 20, data_at=3 << 20)
    root = image_of(tmp_path, tar)
    tight = LayerLimits(ratio=1, floor=4 << 20, absolute=1 << 40)
    with open_archive(root) as source:
        with pytest.raises(IntegrityError, match=r"'holes' \(a sparse file of 8,388,608 bytes\)"):
            unpack(source, tmp_path / "refused", limits=tight)
        (problem,) = verify(source, deep=True, limits=tight)
        assert "a sparse file of 8,388,608 bytes" in problem
        assert verify(source, deep=True) == []  # within the default limits
        unpack(source, tmp_path / "rootfs")
    assert not (tmp_path / "refused").exists()
    holes = tmp_path / "rootfs" / "holes"
    data = holes.read_bytes()
    assert len(data) == 8 << 20
    assert data[3 << 20 : (3 << 20) + len(DATA)] == DATA
    assert data.count(0) == len(data) - len(DATA) + DATA.count(0)
    # written sparse: the holes take no blocks (a few blocks for the data at most)
    assert holes.stat().st_blocks * 512 <= 1 << 20


@pytest.mark.parametrize("fmt", FORMATS)
def test_gnu_tar_sparse_files_unpack_to_their_content(tmp_path: Path, fmt: str) -> None:
    tar = gnu_tar_sparse(tmp_path, fmt, 6 << 20, data_at=5 << 20)
    with open_archive(image_of(tmp_path, tar)) as source:
        unpack(source, tmp_path / "rootfs")
    data = (tmp_path / "rootfs" / "holes").read_bytes()
    assert len(data) == 6 << 20
    assert data[5 << 20 : (5 << 20) + len(DATA)] == DATA
    assert not data[: 5 << 20].strip(b"\0")


def _plain_file_tar(name: str, size: int) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size = size
        tar.addfile(info, io.BytesIO(os.urandom(size)))
    return buf.getvalue()


def test_the_layers_of_an_image_have_a_total(tmp_path: Path) -> None:
    """Three layers of 400 kB each, within their own caps, against a total of 1 MB."""
    tars = [_plain_file_tar(f"f{n}", 400_000) for n in range(3)]
    root = image_of(tmp_path, *tars)
    limits = LayerLimits(total=1_000_000)
    with open_archive(root) as source:
        with pytest.raises(IntegrityError, match="takes the image past the 1,000,000 bytes") as err:
            unpack(source, tmp_path / "rootfs", limits=limits)
        assert "--max-unpacked-size SIZE" in (err.value.hint or "")
        (problem,) = verify(source, deep=True, limits=limits)
        assert problem.endswith(
            "its layers write 1,200,000 bytes when unpacked, more than the 1,000,000 an "
            "unpack may write in all (if the image is genuine, raise the limit with "
            "--max-unpacked-size SIZE)"
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["layout"]


def test_the_applier_charges_a_file_before_writing_it(tmp_path: Path) -> None:
    tar = hand_pax_sparse("0.1", 64 << 20, data_at=0)
    applier = LayerApplier(tmp_path / "root", limits=LayerLimits(absolute=1 << 20))
    with pytest.raises(IntegrityError, match="one layer may write"):
        applier.apply(io.BytesIO(tar))
    assert list((tmp_path / "root").iterdir()) == []


def test_cli_options_raise_the_limits_and_the_hint_names_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tar = gnu_tar_sparse(tmp_path, "0.1", 1200 << 20, data_at=0)
    root = image_of(tmp_path, tar)
    assert main(["unpack", "-q", str(root), str(tmp_path / "refused")]) == 7
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("error: ")
    assert "a sparse file of 1,258,291,200 bytes" in err[0]
    assert err[1] == (
        "hint: refused as a likely decompression bomb; if the layer is genuine, raise the "
        "limit with --max-layer-size SIZE"
    )
    assert main(["verify", "--deep", "-q", str(root)]) == 7
    assert "--max-layer-size SIZE" in capsys.readouterr().out

    raised = ["--max-layer-size", "2G", "--max-unpacked-size", "1300M"]
    assert main(["verify", "--deep", "-q", *raised, str(root)]) == 0
    assert main(["unpack", "-q", *raised, str(root), str(tmp_path / "rootfs")]) == 0
    holes = tmp_path / "rootfs" / "holes"
    assert holes.stat().st_size == 1200 << 20
    assert holes.stat().st_blocks * 512 <= 1 << 20, "written sparse"
    capsys.readouterr()

    total = ["--max-layer-size", "2G", "--max-unpacked-size", "1G"]
    assert main(["unpack", "-q", *total, str(root), str(tmp_path / "r2")]) == 7
    assert "hint: if the image is genuine, raise the limit with --max-unpacked-size SIZE" in (
        capsys.readouterr().err
    )
    assert main(["unpack", "--max-layer-size", "lots", str(root), str(tmp_path / "r3")]) == 2
    assert capsys.readouterr().err.startswith("error: --max-layer-size: invalid size 'lots'")
