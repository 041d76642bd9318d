"""No file name sneaker writes contains a character Windows forbids."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sneaker.archive import write_docker_archive, write_oci_layout
from sneaker.image.digest import Digest
from sneaker.image.model import Descriptor, Manifest, parse_manifest
from sneaker.image.records import ImageRecord
from sneaker.image.reference import parse_reference
from sneaker.verbs.pull import default_output_name

WINDOWS_FORBIDDEN = re.compile(r'[<>:"|?*\\\x00-\x1f]')


@pytest.mark.parametrize(
    ("ref", "name"),
    [
        ("ubuntu:22.04", "ubuntu_22.04.tar"),
        ("ubuntu", "ubuntu_latest.tar"),
        ("ghcr.io/org/app:1.0", "app_1.0.tar"),
        ("localhost:5000/a/b@sha256:" + "ab" * 32, "b_sha256-abababababab.tar"),
        ("quay.io/x/y:v1@sha256:" + "cd" * 32, "y_v1_sha256-cdcdcdcdcdcd.tar"),
    ],
)
def test_default_output_names(ref: str, name: str) -> None:
    produced = default_output_name(parse_reference(ref))
    assert produced == name
    assert not WINDOWS_FORBIDDEN.search(produced)


class _Blobs:
    def __init__(self, blobs: dict[Digest, bytes]) -> None:
        self._blobs = blobs

    def open_blob(self, desc: Descriptor):  # type: ignore[no-untyped-def]
        import contextlib
        import io

        return contextlib.nullcontext(io.BytesIO(self._blobs[desc.digest]))

    def blob_path(self, desc: Descriptor) -> Path | None:
        return None


def _record() -> tuple[ImageRecord, _Blobs]:
    config = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
    config_digest = Digest.of_bytes(config)
    raw = (
        b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",'
        b'"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"'
        + str(config_digest).encode()
        + b'","size":%d},"layers":[]}' % len(config)
    )
    manifest = parse_manifest(raw)
    assert isinstance(manifest, Manifest)
    ref = parse_reference("localhost:5000/app:1.0")
    return ImageRecord(ref, manifest), _Blobs({config_digest: config})


def test_archive_and_layout_member_names(tmp_path: Path) -> None:
    import tarfile

    record, blobs = _record()
    write_docker_archive([record], blobs, tmp_path / "d.tar")
    write_oci_layout([record], blobs, tmp_path / "o.tar", as_tar=True)
    write_oci_layout([record], blobs, tmp_path / "layout", as_tar=False)
    names: list[str] = []
    for archive in ("d.tar", "o.tar"):
        with tarfile.open(tmp_path / archive) as tar:
            names += tar.getnames()
    names += [str(p.relative_to(tmp_path)) for p in (tmp_path / "layout").rglob("*")]
    assert names
    for name in names:
        assert not WINDOWS_FORBIDDEN.search(name.replace("/", "_")), name
