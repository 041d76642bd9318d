"""assemble's checks on a hand-made plan directory: every file, every problem named (no network)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from sneaker.errors import ArchiveError, IntegrityError, NotFound, UnsupportedError, UsageError
from sneaker.image import mediatypes as mt
from sneaker.image.digest import Digest
from sneaker.image.model import Manifest, parse_manifest
from sneaker.image.platform import Platform
from sneaker.image.records import ImageRecord
from sneaker.image.reference import parse_reference
from sneaker.image.selection import PlatformRequest
from sneaker.verbs.assemble import assemble, check_plan
from sneaker.verbs.plan import PlannedImage, blob_relpath, manifest_relpath, plan, plan_document

CONFIG = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["a","b"]}}'
LAYERS = [b"first layer" * 50, b"second layer" * 70]
NAME = "registry.example:5000/team/app:1"


def _manifest() -> Manifest:
    doc = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "config": {
            "mediaType": mt.OCI_CONFIG,
            "digest": str(Digest.of_bytes(CONFIG)),
            "size": len(CONFIG),
        },
        "layers": [
            {"mediaType": mt.OCI_LAYER_GZIP, "digest": str(Digest.of_bytes(d)), "size": len(d)}
            for d in LAYERS
        ],
    }
    parsed = parse_manifest(json.dumps(doc).encode())
    assert isinstance(parsed, Manifest)
    return parsed


def _make_plan(root: Path, request: PlatformRequest | None = None) -> tuple[Path, Manifest]:
    manifest = _manifest()
    ref = parse_reference(NAME)
    image = PlannedImage(
        record=ImageRecord(ref, manifest),
        api="https://registry.example:5000/v2/",
        source_digest=manifest.digest,
        platforms=(Platform("linux", "amd64"),),
        blob_url=lambda d: f"https://registry.example:5000/v2/team/app/blobs/{d}",
    )
    doc = plan_document(
        [image], request or PlatformRequest(platforms=(Platform("linux", "amd64"),))
    )
    plan_dir = root / "plan"
    (plan_dir / "manifests").mkdir(parents=True)
    (plan_dir / "blobs" / "sha256").mkdir(parents=True)
    (plan_dir / "plan.json").write_text(json.dumps(doc))
    (plan_dir / manifest_relpath(manifest.digest)).write_bytes(manifest.raw)
    for data in [CONFIG, *LAYERS]:
        (plan_dir / blob_relpath(Digest.of_bytes(data))).write_bytes(data)
    return plan_dir, manifest


def _layer_path(n: int) -> str:
    return blob_relpath(Digest.of_bytes(LAYERS[n]))


HINT = (
    "run fetch.sh in the plan directory again (it fetches what is missing and replaces what "
    "is damaged), or fetch those files from urls.txt"
)


def test_complete_plan_checks_clean(tmp_path: Path) -> None:
    plan_dir, manifest = _make_plan(tmp_path)
    checked = check_plan(plan_dir)
    assert [str(r.reference) for r in checked.records] == [NAME]
    assert checked.records[0].root == manifest
    assert checked.single is True
    assert checked.files == 4  # manifest, config, two layers
    assert checked.bytes == len(manifest.raw) + len(CONFIG) + sum(len(d) for d in LAYERS)


def test_missing_layer_names_file_and_image(tmp_path: Path) -> None:
    plan_dir, _ = _make_plan(tmp_path)
    (plan_dir / _layer_path(1)).unlink()
    with pytest.raises(NotFound) as info:
        check_plan(plan_dir)
    assert info.value.message == (
        f"plan {plan_dir}: {_layer_path(1)} (layer 2/2 of {NAME}) is missing"
    )
    assert info.value.hint == HINT


def test_truncated_and_tampered_are_integrity_errors_listed_together(tmp_path: Path) -> None:
    plan_dir, _ = _make_plan(tmp_path)
    (plan_dir / _layer_path(0)).write_bytes(LAYERS[0][:-1])
    tampered = bytearray(LAYERS[1])
    tampered[3] ^= 1
    (plan_dir / _layer_path(1)).write_bytes(bytes(tampered))
    config = plan_dir / blob_relpath(Digest.of_bytes(CONFIG))
    config.unlink()
    with pytest.raises(IntegrityError) as info:
        check_plan(plan_dir)
    actual = hashlib.sha256(bytes(tampered)).hexdigest()
    assert info.value.message == (
        f"plan {plan_dir}: 3 files are missing or damaged: "
        f"{blob_relpath(Digest.of_bytes(CONFIG))} (config of {NAME}) is missing; "
        f"{_layer_path(0)} (layer 1/2 of {NAME}) has {len(LAYERS[0]) - 1} bytes, "
        f"expected {len(LAYERS[0])}; "
        f"{_layer_path(1)} (layer 2/2 of {NAME}) does not match its digest: "
        f"content hashes to sha256:{actual}"
    )


def test_tampered_manifest_is_named(tmp_path: Path) -> None:
    plan_dir, manifest = _make_plan(tmp_path)
    path = plan_dir / manifest_relpath(manifest.digest)
    path.write_bytes(manifest.raw[:-1] + b" ")  # same size, other content
    with pytest.raises(IntegrityError) as info:
        check_plan(plan_dir)
    assert info.value.message.startswith(
        f"plan {plan_dir}: {manifest_relpath(manifest.digest)} (manifest of {NAME}) "
    )


def test_plan_digest_pins_plan_json(tmp_path: Path) -> None:
    plan_dir, _ = _make_plan(tmp_path)
    good = Digest.of_bytes((plan_dir / "plan.json").read_bytes())
    assert check_plan(plan_dir, plan_digest=good).records
    wrong = Digest.of_bytes(b"something else")
    with pytest.raises(IntegrityError) as info:
        check_plan(plan_dir, plan_digest=wrong)
    assert info.value.message == (
        f"{plan_dir / 'plan.json'} does not match the plan digest {wrong}: it hashes to {good}"
    )


def test_not_a_plan(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="nowhere: no such file or directory"):
        check_plan(tmp_path / "nowhere")
    tmp_path.joinpath("empty").mkdir()
    with pytest.raises(UsageError) as info:
        check_plan(tmp_path / "empty")
    assert info.value.message == f"{tmp_path / 'empty' / 'plan.json'} is missing"
    (tmp_path / "empty" / "plan.json").write_text('{"format": "something"}')
    with pytest.raises(ArchiveError, match="is not a sneaker plan"):
        check_plan(tmp_path / "empty")


def test_newer_plan_version_is_unsupported(tmp_path: Path) -> None:
    plan_dir, _ = _make_plan(tmp_path)
    doc = json.loads((plan_dir / "plan.json").read_text())
    doc["version"] = 99
    (plan_dir / "plan.json").write_text(json.dumps(doc))
    with pytest.raises(UnsupportedError, match="version 99 plan"):
        check_plan(plan_dir)


def test_docker_format_refused_for_several_platforms_before_checking(tmp_path: Path) -> None:
    request = PlatformRequest(platforms=(Platform("linux", "amd64"), Platform("linux", "arm64")))
    plan_dir, _ = _make_plan(tmp_path, request)
    (plan_dir / _layer_path(0)).unlink()  # not even looked at
    with pytest.raises(UsageError) as info:
        assemble(plan_dir, tmp_path / "out.tar", format="docker")
    assert info.value.message == (
        f"plan {plan_dir} was made for several platforms; "
        "a docker archive holds one platform per image"
    )
    assert info.value.hint == "assemble it with --format oci"


def test_plan_refuses_a_directory_that_is_not_empty(tmp_path: Path) -> None:
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "file").write_text("x")
    with pytest.raises(UsageError) as info:
        plan(["alpine"], tmp_path / "busy")
    assert info.value.message == f"{tmp_path / 'busy'} exists and is not empty"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["busy"]


# -- credentials a killed fetch.sh of an older sneaker left in the plan directory ---------

SECRET = "s3cret-pw"


def _leftover(plan_dir: Path, pid: int, *, with_credentials: bool = True) -> Path:
    """What a fetch.sh before sneaker kept its state outside the plan left when killed."""
    leftover = plan_dir / f".fetch-tmp.{pid}"
    (leftover / "taken.1").mkdir(parents=True)
    job = leftover / "job1"
    job.mkdir()
    (job / "headers").write_text("HTTP/1.1 401 Unauthorized\r\n")
    (job / "token.conf").write_text(f'user = "alice:{SECRET}"\n' if with_credentials else "")
    if with_credentials:
        (job / "auth.conf").write_text('header = "Authorization: Bearer eyJtoken"\n')
        (job / "token.json").write_text('{"token": "eyJtoken"}')
    return leftover


def test_assemble_removes_credentials_a_killed_fetch_sh_left_and_names_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from sneaker.cli.main import main

    plan_dir, _ = _make_plan(tmp_path)
    leftover = _leftover(plan_dir, 4242)
    plain = _leftover(plan_dir, 4343, with_credentials=False)
    out = tmp_path / "images.tar"
    assert main(["assemble", "-q", str(plan_dir), "-o", str(out)]) == 0
    job = leftover / "job1"
    assert capsys.readouterr().err.splitlines() == [
        f"warning: removed {job / 'auth.conf'}, {job / 'token.conf'}, {job / 'token.json'}: "
        "registry credentials or tokens that a killed fetch.sh left in the plan directory; "
        "change the password of that registry account if the directory was copied anywhere",
        f"warning: removed {plain}: the temporary files of a killed fetch.sh",
    ]
    assert not leftover.exists()
    assert not plain.exists()
    for path in [*plan_dir.rglob("*"), out]:
        assert not path.is_file() or SECRET.encode() not in path.read_bytes()


def test_assemble_refuses_credentials_it_cannot_remove(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sneaker.verbs.assemble as assembling

    def refuse(path: Path) -> None:
        raise PermissionError(13, "Read-only file system", str(path))

    plan_dir, _ = _make_plan(tmp_path)
    leftover = _leftover(plan_dir, 4242)
    monkeypatch.setattr(assembling, "remove_tree", refuse)
    with pytest.raises(UsageError) as info:
        assemble(plan_dir, tmp_path / "images.tar")
    assert info.value.message.startswith(
        f"plan {plan_dir} holds registry credentials or tokens that a killed fetch.sh left in "
        f"{leftover / 'job1' / 'auth.conf'}, "
    )
    assert info.value.message.endswith("and they cannot be removed (Read-only file system)")
    assert info.value.hint is not None
    assert info.value.hint.startswith(f"delete {leftover}, then run assemble again")
    assert not (tmp_path / "images.tar").exists()
