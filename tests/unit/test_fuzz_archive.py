"""Property-based fuzzing of what reads archives and layers: random and mutated tars.

Properties:

* :func:`open_archive` (and reading every blob it then offers) on a random or
  mutated archive raises only :class:`ArchiveError`, :class:`IntegrityError`
  or :class:`UnsupportedError` (a blob it lacks: :class:`NotFound`), and never
  writes a file;
* :class:`LayerApplier` on a random layer tar of hostile names and links raises
  only :class:`ArchiveError` (``UnsafePath`` included) and never changes
  anything outside its destination.

Bounded runs (``EXAMPLES`` each, derandomized under CI by the ``ci`` profile of
``tests/conftest.py``); ``SNEAKER_FUZZ_EXAMPLES`` raises it for a long run.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sneaker.archive import open_archive, write_docker_archive, write_oci_layout
from sneaker.errors import ArchiveError, IntegrityError, NotFound, UnsupportedError
from sneaker.layers.apply import LayerApplier
from tests.unit.test_archive_common import Blobs, dumps, layer_tar, make_record

#: examples per property (raise with SNEAKER_FUZZ_EXAMPLES for a long run)
EXAMPLES = int(os.environ.get("SNEAKER_FUZZ_EXAMPLES", "100"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=timedelta(seconds=5),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
#: what reading a hostile archive may raise
ALLOWED = (ArchiveError, IntegrityError, UnsupportedError)

# -- seeds: small valid archives of each kind -----------------------------------------------


def _members(path: Path) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    with tarfile.open(path) as tar:
        for info in tar.getmembers():
            handle = tar.extractfile(info)
            if handle is not None:
                out[info.name] = handle.read()
    return out


def _legacy(blobs: Blobs) -> bytes:
    """A pre-25 ``docker save``: ``<id>/layer.tar``, ``<id>.json`` config, ``manifest.json``."""
    layer = layer_tar({"etc/hostname": b"legacy\n"})
    config = dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [str(blobs.add(layer))]},
        }
    )
    manifest = [{"Config": "cfg.json", "RepoTags": ["legacy:1"], "Layers": ["abc/layer.tar"]}]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, data in (
            ("abc/layer.tar", layer),
            ("cfg.json", config),
            ("manifest.json", dumps(manifest)),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _make_seeds() -> dict[str, bytes]:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        blobs = Blobs()
        record = make_record(blobs, "app:1", [{"a": b"1"}, {"b/c": b"2"}])
        write_docker_archive([record], blobs, base / "docker.tar")
        write_oci_layout([record], blobs, base / "oci.tar", as_tar=True)
        return {
            "docker": (base / "docker.tar").read_bytes(),
            "oci": (base / "oci.tar").read_bytes(),
            "legacy": _legacy(blobs),
        }


SEEDS = _make_seeds()


def _members_of(data: bytes) -> dict[str, bytes]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "seed.tar"
        path.write_bytes(data)
        return _members(path)


SEED_MEMBERS = {**_members_of(SEEDS["legacy"]), **_members_of(SEEDS["docker"])}


def _header_offsets(data: bytes) -> list[int]:
    """Where the ustar headers of ``data`` start (PAX and GNU records included)."""
    return [
        offset
        for offset in range(0, len(data) - 512, 512)
        if data[offset + 257 : offset + 262] == b"ustar"
    ]


HEADERS = {kind: _header_offsets(data) for kind, data in SEEDS.items()}

# -- reading an archive, checking the property -----------------------------------------------


def _read_everything(path: Path) -> None:
    """Open the archive and read every blob it offers; raise only what a reader may."""
    try:
        with open_archive(path) as archive:
            for record in archive.records:
                for desc in record.blobs():
                    try:
                        with archive.open_blob(desc) as handle:
                            while handle.read(1 << 16):
                                pass
                    except (*ALLOWED, NotFound):
                        continue
    except ALLOWED:
        return


def _check_reader(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "input.tar"
        path.write_bytes(data)
        before = sorted(os.listdir(tmp))
        _read_everything(path)
        assert sorted(os.listdir(tmp)) == before  # nothing written, nothing extracted
        assert path.read_bytes() == data  # and the input untouched


# -- mutations --------------------------------------------------------------------------------

#: header fields: (offset, length) of name, mode, uid, size, mtime, typeflag, linkname, prefix
_FIELDS = [(0, 100), (100, 8), (108, 8), (124, 12), (136, 12), (156, 1), (157, 100), (345, 155)]
_SIZE_VALUES = [
    b"77777777777\x00",  # 8 GiB - 1, octal
    b"\x80" + b"\x00" * 3 + b"\x7f" + b"\xff" * 7,  # base-256: far beyond the file
    b"\xff" * 12,  # base-256 negative
    b"00000001000\x00",
    b"zzzzzzzzzzzz",
]
_TYPES = [b"0", b"1", b"2", b"3", b"4", b"5", b"6", b"7", b"x", b"g", b"L", b"K", b"S", b"\x00"]


@st.composite
def _header_edit(draw: st.DrawFn, kind: str) -> tuple[int, int, bytes]:
    header = draw(st.sampled_from(HEADERS[kind]))
    offset, length = draw(st.sampled_from(_FIELDS))
    if offset == 124:
        value = draw(st.sampled_from(_SIZE_VALUES) | st.binary(min_size=1, max_size=12))
    elif offset == 156:
        value = draw(st.sampled_from(_TYPES))
    elif offset in (0, 157):
        value = draw(
            st.sampled_from([b"/etc/passwd\x00", b"../../x\x00", b"index.json\x00", b"\x00"])
            | st.binary(min_size=1, max_size=20)
        )
    else:
        value = draw(st.binary(min_size=1, max_size=length))
    return header, offset, value[:length]


@st.composite
def _extended_header_edit(draw: st.DrawFn, kind: str) -> list[tuple[int, int, bytes]]:
    """Turn a header into a PAX or GNU long-name record of an absurd size (tarfile reads
    such records whole: the reader must refuse them before it allocates)."""
    header = draw(st.sampled_from(HEADERS[kind]))
    return [
        (header, 156, draw(st.sampled_from([b"x", b"g", b"L", b"K"]))),
        (header, 124, draw(st.sampled_from(_SIZE_VALUES))),
    ]


def _apply_edit(data: bytearray, edit: tuple[int, int, bytes], fix_checksum: bool) -> None:
    header, offset, value = edit
    data[header + offset : header + offset + len(value)] = value
    if fix_checksum:
        data[header + 148 : header + 156] = b" " * 8
        checksum = sum(data[header : header + 512])
        data[header + 148 : header + 156] = b"%06o\x00 " % checksum


@st.composite
def _mutated_archive(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(sorted(SEEDS)))
    data = bytearray(SEEDS[kind])
    fix = draw(st.booleans())
    groups = draw(
        st.lists(
            _header_edit(kind).map(lambda edit: [edit]) | _extended_header_edit(kind),
            min_size=1,
            max_size=3,
        )
    )
    for edit in [edit for group in groups for edit in group]:
        _apply_edit(data, edit, fix)
    for position, value in draw(
        st.lists(st.tuples(st.integers(0, len(data) - 1), st.integers(0, 255)), max_size=3)
    ):
        data[position] = value
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return bytes(data)


_NAMES = [
    *sorted(SEED_MEMBERS),
    *["index.json", "manifest.json", "oci-layout", "repositories", "blobs", "blobs/sha256"],
    *["/etc/passwd", "../escape", "a/../../b", "./index.json", "blobs//sha256", "a\\b"],
]
_KEYS = [
    "manifests", "digest", "size", "mediaType", "Config", "Layers", "RepoTags", "annotations",
    "imageLayoutVersion", "schemaVersion", "config", "layers", "rootfs", "diff_ids", "urls",
]  # fmt: skip
_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-2, 2**70)
    | st.text(max_size=8)
    | st.sampled_from([*_NAMES, "sha256:" + "0" * 64, "application/vnd.oci.image.index.v1+json"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(_KEYS), inner),
    max_leaves=12,
)
_content = st.one_of(
    st.sampled_from(sorted(SEED_MEMBERS.values())),
    _json.map(lambda value: json.dumps(value).encode()),
    st.binary(max_size=48),
)
#: PAX records that override a member's size or name (tarfile applies them after the header)
_pax = st.none() | st.fixed_dictionaries(
    {},
    optional={
        "size": st.sampled_from(["99999999999999999999999999", "-5", "1e3", "0", "4096"]),
        "path": st.sampled_from(["../escape", "/etc/passwd", "index.json", "a" * 300]),
        "linkpath": st.sampled_from(["/etc/shadow", "../../x", "index.json"]),
    },
)
_member = st.tuples(
    st.sampled_from(_NAMES),
    st.sampled_from(
        [
            tarfile.REGTYPE,
            tarfile.SYMTYPE,
            tarfile.LNKTYPE,
            tarfile.DIRTYPE,
            tarfile.FIFOTYPE,
            tarfile.CHRTYPE,
        ]
    ),
    st.sampled_from(_NAMES),
    _content,
    _pax,
)


@st.composite
def _random_archive(draw: st.DrawFn) -> bytes:
    """Members of a real archive (a random subset) next to random, often hostile, members."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        keep = draw(st.lists(st.sampled_from(sorted(SEED_MEMBERS)), unique=True, max_size=8))
        extra: list[Any] = draw(st.lists(_member, max_size=6))
        for name in keep:
            info = tarfile.TarInfo(name)
            info.size = len(SEED_MEMBERS[name])
            tar.addfile(info, io.BytesIO(SEED_MEMBERS[name]))
        for name, kind, target, body, pax in extra:
            info = tarfile.TarInfo(name)
            info.type = kind
            if pax:
                info.pax_headers = pax
            if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE):
                info.linkname = target
            if kind == tarfile.REGTYPE:
                info.size = len(body)
                tar.addfile(info, io.BytesIO(body))
            else:
                tar.addfile(info)
    return buf.getvalue()


# -- the reader ------------------------------------------------------------------------------


def test_seeds_are_readable() -> None:
    for kind, data in SEEDS.items():
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"{kind}.tar"
            path.write_bytes(data)
            with open_archive(path) as archive:
                assert len(archive.records) == 1, kind
        assert HEADERS[kind], kind


@FUZZ
@given(_mutated_archive())
def test_fuzz_reader_on_mutated_archives(data: bytes) -> None:
    _check_reader(data)


@FUZZ
@given(_random_archive())
def test_fuzz_reader_on_random_archives(data: bytes) -> None:
    _check_reader(data)


@FUZZ
@given(st.binary(max_size=2048))
def test_fuzz_reader_on_random_bytes(data: bytes) -> None:
    _check_reader(data)


# -- applying layers -------------------------------------------------------------------------

_PARTS = ["a", "b", "..", ".", "", ".wh.a", ".wh..wh..opq", "etc", "out"]
_path_text = st.lists(st.sampled_from(_PARTS), min_size=1, max_size=4).map("/".join)
_link_target = _path_text | _path_text.map(lambda p: "/" + p) | st.sampled_from(["../out/x"])
_layer_member = st.tuples(
    st.sampled_from(["file", "dir", "symlink", "hardlink", "fifo"]),
    _path_text,
    _link_target,
)


def _layer(members: list[tuple[str, str, str]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for kind, name, target in members:
            info = tarfile.TarInfo(name)
            info.mode = 0o755 if kind == "dir" else 0o644
            data = b""
            if kind == "file":
                data = name.encode()
                info.size = len(data)
            elif kind == "dir":
                info.type = tarfile.DIRTYPE
            elif kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, target
            elif kind == "hardlink":
                info.type, info.linkname = tarfile.LNKTYPE, target
            else:
                info.type = tarfile.FIFOTYPE
            tar.addfile(info, io.BytesIO(data) if data else None)
    return buf.getvalue()


def _snapshot(root: Path, skip: Path) -> dict[str, tuple[str, bytes | str | None]]:
    """Every entry under ``root`` except the ``skip`` tree: kind and content or link target."""
    out: dict[str, tuple[str, bytes | str | None]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = [d for d in dirnames if here / d != skip]
        for name in [*dirnames, *filenames]:
            path = here / name
            key = str(path.relative_to(root))
            if path.is_symlink():
                out[key] = ("link", os.readlink(path))
            elif path.is_dir():
                out[key] = ("dir", None)
            else:
                out[key] = ("file", path.read_bytes())
    return out


@FUZZ
@given(
    st.lists(st.lists(_layer_member, min_size=1, max_size=8), min_size=1, max_size=2),
    st.none() | st.integers(0, 8192),
)
def test_fuzz_layers_never_write_outside_the_destination(
    layers: list[list[tuple[str, str, str]]], cut: int | None
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        sandbox = Path(tmp)
        (sandbox / "out").mkdir()
        (sandbox / "out" / "x").write_bytes(b"sentinel")
        (sandbox / "sibling").write_bytes(b"sentinel")
        dest = sandbox / "root"
        before = _snapshot(sandbox, dest)
        applier = LayerApplier(dest)
        try:
            for members in layers:
                data = _layer(members)
                applier.apply(io.BytesIO(data if cut is None else data[:cut]))
            applier.finish()
        except ArchiveError:
            pass
        assert _snapshot(sandbox, dest) == before


@pytest.mark.parametrize("kind", sorted(SEEDS))
def test_truncation_at_every_block_is_refused_cleanly(kind: str) -> None:
    data = SEEDS[kind]
    for end in range(0, len(data), 512):
        _check_reader(data[:end])
