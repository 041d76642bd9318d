"""zstd layers read, verified and unpacked with each zstd module (sneaker.layers.zstd).

Each test runs once per module, forced by narrowing ``ZSTD_MODULES`` to it: the standard
library's ``compression.zstd`` (Python 3.14+), ``backports.zstd`` and ``zstandard`` (both
in the ``test`` extra: missing, these tests fail). Where this Python has no
``compression.zstd``, ``backports.zstd`` (the same module for older Pythons, PEP 784's
backport) is installed under that name for the ``compression.zstd`` runs, so the code
path the standard library takes is still the one tested.
"""

from __future__ import annotations

import importlib
import io
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sneaker.archive import open_archive
from sneaker.errors import IntegrityError, UnsupportedError
from sneaker.image import mediatypes as mt
from sneaker.layers import zstd as zstd_layers
from sneaker.layers.apply import diff_id_of, open_layer_stream
from sneaker.util import speedups
from sneaker.verbs.unpack import unpack
from sneaker.verbs.verify import verify
from tests.unit.test_layers_streams import TAR, TAR_DIFF_ID
from tests.unit.test_verify import REF, Layout

MODULES = ("compression.zstd", "backports.zstd", "zstandard")
SKIPPABLE = b"\x50\x2a\x4d\x18" + (4).to_bytes(4, "little") + b"meta"


def _stdlib_or_stand_in(monkeypatch: pytest.MonkeyPatch) -> Any:
    """``compression.zstd``: the real one (3.14+), else backports.zstd under its name."""
    try:
        return importlib.import_module("compression.zstd")
    except ImportError:
        pass
    backport = importlib.import_module("backports.zstd")
    package = types.ModuleType("compression")
    package.__path__ = []
    package.zstd = backport  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "compression", package)
    monkeypatch.setitem(sys.modules, "compression.zstd", backport)
    return backport


@pytest.fixture(params=MODULES)
def compress(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Force one zstd module for the test; returns that module's own compress function."""
    name: str = request.param
    if name == "compression.zstd":
        module = _stdlib_or_stand_in(monkeypatch)
    else:
        module = importlib.import_module(name)
    monkeypatch.setattr(zstd_layers, "ZSTD_MODULES", (name,))
    assert zstd_layers.load_zstd("probe").name == name
    # with the content checksum, as the zstd command writes by default: damage shows
    if name == "zstandard":
        return module.ZstdCompressor(write_checksum=True).compress
    checksum = {module.CompressionParameter.checksum_flag: 1}
    return lambda data: module.compress(data, options=checksum)


def test_a_zstd_layer_has_its_diff_id(compress: Callable[[bytes], bytes]) -> None:
    blob = compress(TAR)
    digest, size = diff_id_of(io.BytesIO(blob), mt.OCI_LAYER_ZSTD, compressed_size=len(blob))
    assert (str(digest), size) == (TAR_DIFF_ID, len(TAR))


def test_frames_and_skippable_frames_are_all_read(compress: Callable[[bytes], bytes]) -> None:
    blob = SKIPPABLE + compress(TAR[:700]) + SKIPPABLE + compress(TAR[700:]) + SKIPPABLE
    digest, size = diff_id_of(io.BytesIO(blob), mt.OCI_LAYER_ZSTD)
    assert (str(digest), size) == (TAR_DIFF_ID, len(TAR))


def test_damaged_zstd_is_an_integrity_error(compress: Callable[[bytes], bytes]) -> None:
    blob = bytearray(compress(TAR))
    blob[len(blob) // 2] ^= 0xFF
    with pytest.raises(IntegrityError, match=r"^layer: damaged zstd data"):
        diff_id_of(io.BytesIO(bytes(blob)), mt.OCI_LAYER_ZSTD)


def test_a_cut_zstd_stream_is_noticed(
    compress: Callable[[bytes], bytes], request: pytest.FixtureRequest
) -> None:
    blob = compress(TAR)
    cut = io.BytesIO(blob[: len(blob) // 2])
    if request.node.callspec.params["compress"] == "zstandard":
        # zstandard's reader ends quietly where the bytes end: the diff_id tells
        digest, _size = diff_id_of(cut, mt.OCI_LAYER_ZSTD)
        assert str(digest) != TAR_DIFF_ID
        return
    with pytest.raises(IntegrityError, match=r"^layer: damaged zstd data"):
        diff_id_of(cut, mt.OCI_LAYER_ZSTD)


def _zstd_image(layout: Layout, compress: Callable[[bytes], bytes]) -> dict[str, Any]:
    desc = layout.image(
        [{"etc/os-release": b"ID=zstd\n"}, {"app/run.sh": b"echo zstd\n" * 50}],
        compress=compress,
        layer_type=mt.OCI_LAYER_ZSTD,
    )
    layout.name(desc, REF)
    return desc


def test_verify_and_unpack_an_image_of_zstd_layers(
    compress: Callable[[bytes], bytes], tmp_path: Path
) -> None:
    layout = Layout(tmp_path / "layout")
    _zstd_image(layout, compress)
    with open_archive(layout.root) as archive:
        assert verify(archive, deep=True) == []
        result = unpack(archive, tmp_path / "root")
    assert result.layers == 2
    assert (tmp_path / "root" / "etc" / "os-release").read_bytes() == b"ID=zstd\n"
    assert (tmp_path / "root" / "app" / "run.sh").read_bytes() == b"echo zstd\n" * 50


def test_deep_verify_finds_a_zstd_layer_whose_content_is_not_its_diff_id(
    compress: Callable[[bytes], bytes], tmp_path: Path
) -> None:
    layout = Layout(tmp_path / "layout")
    desc = layout.image(
        [{"a.txt": b"alpha"}],
        compress=compress,
        layer_type=mt.OCI_LAYER_ZSTD,
        diff_ids=["sha256:" + "0" * 64],
    )
    layout.name(desc, REF)
    with open_archive(layout.root) as archive:
        problems = verify(archive, deep=True)
    assert len(problems) == 1
    assert "diff_id" in problems[0]


def test_modules_are_tried_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    _stdlib_or_stand_in(monkeypatch)
    assert zstd_layers.find_zstd() is not None
    assert zstd_layers.find_zstd().name == "compression.zstd"  # type: ignore[union-attr]
    monkeypatch.setitem(sys.modules, "compression.zstd", None)  # as before Python 3.14
    assert zstd_layers.find_zstd().name == "backports.zstd"  # type: ignore[union-attr]
    monkeypatch.setitem(sys.modules, "backports.zstd", None)
    assert zstd_layers.find_zstd().name == "zstandard"  # type: ignore[union-attr]


def test_without_any_zstd_module_the_error_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in MODULES:
        monkeypatch.setitem(sys.modules, name, None)
    assert zstd_layers.find_zstd() is None
    blob = b"\x28\xb5\x2f\xfd" + b"\x00" * 32
    with pytest.raises(UnsupportedError) as info:
        open_layer_stream(io.BytesIO(blob), mt.OCI_LAYER_ZSTD, what="layer sha256:abc")
    assert str(info.value).startswith("layer sha256:abc is zstd-compressed and this Python has")
    assert "compression.zstd comes with Python 3.14" in str(info.value)
    assert info.value.hint is not None
    assert "pip install backports.zstd" in info.value.hint


def test_version_names_the_speedups_and_the_zstd_module(monkeypatch: pytest.MonkeyPatch) -> None:
    present: set[str] = set()
    monkeypatch.setattr(speedups, "installed", lambda name: name in present)
    assert speedups.describe_speedups() == (
        "speed-ups: none (pure Python); zstd: none (pip install backports.zstd)"
    )
    present.add("compression.zstd")
    assert speedups.describe_speedups() == "speed-ups: none (pure Python); zstd: compression.zstd"
    present.clear()
    present.update({"zstandard", "backports.zstd"})
    assert speedups.describe_speedups() == (
        "speed-ups: backports.zstd, zstandard; zstd: backports.zstd"
    )


def test_a_missing_parent_package_is_not_installed() -> None:
    assert not speedups.installed("no_such_package_here.zstd")
    assert speedups.installed("gzip")


def test_the_speedups_extra_lists_what_version_names() -> None:
    toml: Any = importlib.import_module("tomllib" if sys.version_info >= (3, 11) else "tomli")
    root = Path(__file__).resolve().parents[2]
    extras = toml.loads((root / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    listed = {item.split(";")[0].split(">")[0].strip() for item in extras["speedups"]}
    assert listed == {"backports.zstd"}  # zstandard is used when present, not installed
    assert listed <= set(speedups.OPTIONAL)
