"""verify against archives docker itself wrote (``docker save``), intact and damaged."""

from __future__ import annotations

import hashlib
import shutil
import tarfile
from pathlib import Path

import pytest

from sneaker.archive import open_archive, write_docker_archive, write_oci_layout
from sneaker.errors import VerificationFailed
from sneaker.verbs.unpack import unpack
from sneaker.verbs.verify import verify, verify_archive, verify_or_raise
from tests.fixtures.docker import DockerDaemon
from tests.fixtures.images import BuiltImages

pytestmark = pytest.mark.integration

APP_NAME = "docker.io/sneaker-test/app:1"


@pytest.fixture(scope="module")
def saved_app(
    docker: DockerDaemon, built_images: BuiltImages, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    out = tmp_path_factory.mktemp("saved") / "app.tar"
    return docker.save(out, built_images.app)


def test_docker_save_verifies_clean(saved_app: Path) -> None:
    with open_archive(saved_app) as source:
        assert [str(r.reference) for r in source.records] == [APP_NAME]
        assert verify(source, deep=True) == []
        verify_or_raise(source, deep=True)
    assert verify_archive(saved_app, deep=True) == []


def test_sneaker_written_archives_verify_clean(saved_app: Path, tmp_path: Path) -> None:
    with open_archive(saved_app) as source:
        write_docker_archive(source.records, source, tmp_path / "docker.tar")
        write_oci_layout(source.records, source, tmp_path / "oci.tar", as_tar=True)
        write_oci_layout(source.records, source, tmp_path / "layout", as_tar=False)
    for written in ("docker.tar", "oci.tar", "layout"):
        assert verify_archive(tmp_path / written, deep=True) == [], written
    unpack(open_archive(tmp_path / "oci.tar"), tmp_path / "rootfs")
    assert (tmp_path / "rootfs/app/run.sh").is_file()


def _member_holding(archive: Path, digest: str) -> tarfile.TarInfo:
    """The tar member whose bytes are the blob ``digest`` (docker save formats differ)."""
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            if member.isfile():
                data = tar.extractfile(member)
                assert data is not None
                if "sha256:" + hashlib.sha256(data.read()).hexdigest() == digest:
                    return member
    raise AssertionError(f"no member of {archive} holds {digest}")


def test_flipped_byte_in_a_saved_layer(saved_app: Path, tmp_path: Path) -> None:
    with open_archive(saved_app) as source:
        (manifest,) = source.records[0].manifests()
        layer = max(manifest.layers, key=lambda d: d.size)
    damaged = tmp_path / "damaged.tar"
    shutil.copyfile(saved_app, damaged)
    member = _member_holding(damaged, str(layer.digest))
    with damaged.open("r+b") as fh:
        fh.seek(member.offset_data + member.size // 2)
        byte = fh.read(1)
        fh.seek(-1, 1)
        fh.write(bytes([byte[0] ^ 0xFF]))
        fh.seek(member.offset_data)
        actual = hashlib.sha256(fh.read(member.size)).hexdigest()

    problem = (
        f"{APP_NAME}: layer {layer.digest}: digest mismatch (content hashes to sha256:{actual})"
    )
    with open_archive(damaged) as source:
        assert verify(source) == [problem]
        assert verify(source, deep=True) == [problem]
        with pytest.raises(VerificationFailed) as info:
            verify_or_raise(source)
        assert info.value.problems == [problem]
    assert verify_archive(damaged, deep=True) == [problem]
