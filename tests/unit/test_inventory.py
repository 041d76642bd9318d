"""Inventories: the JSON format, and reading one from archives, files and a (fake) registry."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest

from sneaker.archive import write_docker_archive, write_oci_layout
from sneaker.cli.main import main
from sneaker.errors import AuthError, NotFound, UnsupportedError, UsageError
from sneaker.image.digest import Digest
from sneaker.image.inventory import Inventory
from sneaker.image.model import Index, Manifest
from sneaker.transfer.walk import WalkLimits, inventory_from_registry
from sneaker.verbs.inventory import (
    RegistrySource,
    classify_source,
    inventory,
    inventory_from_archive,
    load_base,
    load_inventory,
    write_inventory,
)
from sneaker.verbs.pull import plan_delta
from tests.unit.test_archive_common import Blobs, make_index, make_manifest, make_record

SHARED = {"bin/tool": b"shared"}


def _digest(text: str) -> Digest:
    return Digest.of_bytes(text.encode())


# -- the format -----------------------------------------------------------------------


def test_json_round_trip_is_sorted_and_versioned() -> None:
    inventory = Inventory(["registry r.example"])
    inventory.add_blob(_digest("b"), 2, "r.example/z", "r.example/a")
    inventory.add_blob(_digest("a"), 1, None)
    inventory.add_blob(_digest("b"), 2, "r.example/a")
    inventory.add_image("r.example/a:1", _digest("m"))
    inventory.add_image("r.example/a:1", _digest("m"))
    doc = inventory.to_json()
    assert doc["format"] == "sneaker-inventory"
    assert doc["version"] == 1
    assert doc["complete"] is True
    assert list(doc["blobs"]) == sorted(doc["blobs"])
    assert doc["blobs"][str(_digest("b"))] == {
        "size": 2,
        "repositories": ["r.example/a", "r.example/z"],
    }
    assert doc["blobs"][str(_digest("a"))]["repositories"] == []
    assert doc["images"] == [{"reference": "r.example/a:1", "digest": str(_digest("m"))}]
    again = Inventory.from_bytes(inventory.to_bytes())
    assert again.to_json() == doc
    assert inventory.size == 3
    assert inventory.describe() == "1 image, 2 blobs (3 B)"


@pytest.mark.parametrize(
    ("doc", "error", "words"),
    [
        ([], UsageError, "not a sneaker inventory"),
        ({"format": "sneaker-delta", "version": 1}, UsageError, "not a sneaker inventory"),
        ({"format": "sneaker-inventory", "version": 9}, UnsupportedError, "version 9"),
        ({"format": "sneaker-inventory", "version": 1, "blobs": []}, UsageError, "keyed by digest"),
        (
            {"format": "sneaker-inventory", "version": 1, "blobs": {"sha256:x": {"size": 1}}},
            UsageError,
            "invalid digest",
        ),
        (
            {
                "format": "sneaker-inventory",
                "version": 1,
                "blobs": {str(Digest.of_bytes(b"x")): {"size": "1"}},
            },
            UsageError,
            "size",
        ),
        (
            {"format": "sneaker-inventory", "version": 1, "complete": "yes"},
            UsageError,
            "complete",
        ),
    ],
)
def test_bad_documents_are_refused(doc: Any, error: type[Exception], words: str) -> None:
    with pytest.raises(error, match=words):
        Inventory.from_json(doc)


def test_merge_joins_repositories_and_completeness() -> None:
    one = Inventory(["a"])
    one.add_blob(_digest("x"), 1, "r/one")
    two = Inventory(["b"], complete=False)
    two.add_blob(_digest("x"), 1, "r/two")
    two.add_blob(_digest("y"), 5)
    one.merge(two)
    assert one.sources == ["a", "b"]
    assert one.blobs[_digest("x")].repositories == {"r/one", "r/two"}
    assert one.has(_digest("y"))
    assert not one.complete


def test_files(tmp_path: Path) -> None:
    inventory = Inventory(["x"])
    inventory.add_blob(_digest("x"), 1, "r.example/app")
    path = tmp_path / "have.json"
    write_inventory(inventory, path)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert load_inventory(path).to_json() == inventory.to_json()
    with pytest.raises(UsageError, match="no such inventory file"):
        load_inventory(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(UsageError, match="not valid JSON"):
        load_inventory(tmp_path / "bad.json")


# -- archives -------------------------------------------------------------------------


def test_inventory_of_a_full_archive(tmp_path: Path) -> None:
    blobs = Blobs()
    records = [
        make_record(blobs, "r.example/base/app:1", [SHARED]),
        make_record(blobs, "r.example/team/app:2", [SHARED, {"new": b"n"}]),
    ]
    out = tmp_path / "old.tar"
    write_docker_archive(records, blobs, out)
    inventory = inventory_from_archive(out)
    assert inventory.sources == [f"archive {out}"]
    assert [i.reference for i in inventory.images] == [
        "r.example/base/app:1",
        "r.example/team/app:2",
    ]
    shared = cast(Manifest, records[0].root).layers[0]
    assert inventory.blobs[shared.digest].repositories == {
        "r.example/base/app",
        "r.example/team/app",
    }
    expected = {d.digest for r in records for d in r.blobs()}
    assert set(inventory.blobs) == expected
    assert all(inventory.blobs[d.digest].size == d.size for r in records for d in r.blobs())


def test_inventory_of_a_delta_counts_its_omitted_layers(tmp_path: Path) -> None:
    """The other side had them, or the delta could not have been pushed: deltas chain."""
    blobs = Blobs()
    v1 = make_record(blobs, "r.example/base/app:1", [SHARED], oci=True)
    v2 = make_record(blobs, "r.example/team/app:2", [SHARED, {"new": b"n"}], oci=True)
    old = tmp_path / "old.tar"
    write_oci_layout([v1], blobs, old, as_tar=True)
    marker = plan_delta([v2], inventory_from_archive(old))
    assert len(marker.omitted) == 1
    delta = tmp_path / "delta.tar"
    write_oci_layout([v2], blobs, delta, as_tar=True, delta=marker)
    inventory = inventory_from_archive(delta)
    (omitted,) = marker.omitted
    assert inventory.blobs[omitted].repositories == {"r.example/base/app", "r.example/team/app"}
    assert set(inventory.blobs) == {d.digest for d in v2.blobs()}


def test_load_base_merges_archives_and_inventory_files(tmp_path: Path) -> None:
    assert load_base() is None
    blobs = Blobs()
    record = make_record(blobs, "r.example/base/app:1", [SHARED])
    old = tmp_path / "old.tar"
    write_docker_archive([record], blobs, old)
    extra = Inventory(["registry t.example"])
    extra.add_blob(_digest("elsewhere"), 9, "t.example/x")
    write_inventory(extra, tmp_path / "have.json")
    base = load_base([old], [tmp_path / "have.json"])
    assert base is not None
    assert base.sources == [f"archive {old}", "registry t.example"]
    assert base.has(_digest("elsewhere"))
    assert all(base.has(d.digest) for d in record.blobs())


# -- registries (a fake client: the real walk is an integration test) ------------------


@dataclass
class FakeClient:
    """The read methods of a :class:`~sneaker.registry.reader.RegistryReader` the walk uses."""

    registry: str
    repos: dict[str, dict[str, bytes]]  # repository -> tag or digest -> raw manifest
    catalog_error: Exception | None = None
    requests: list[str] = field(default_factory=list)

    def catalog(self) -> list[str]:
        self.requests.append("catalog")
        if self.catalog_error is not None:
            raise self.catalog_error
        return list(self.repos)

    def list_tags(self, repository: str) -> list[str]:
        self.requests.append(f"tags {repository}")
        if repository not in self.repos:
            raise NotFound(f"repository {repository} not known")
        return [t for t in self.repos[repository] if not t.startswith("sha256:")]

    def get_manifest(self, repository: str, identifier: str) -> tuple[bytes, str]:
        self.requests.append(f"manifest {repository} {identifier}")
        raw = self.repos.get(repository, {}).get(identifier)
        if raw is None:
            raise NotFound(f"manifest {identifier} not known")
        return raw, ""


def _registry_fixture() -> tuple[FakeClient, Manifest, Manifest, Index]:
    blobs = Blobs()
    amd = make_manifest(blobs, [SHARED, {"amd": b"a"}], oci=True)
    arm = make_manifest(blobs, [SHARED, {"arm": b"b"}], oci=True, arch="arm64")
    multi = make_index("r.example/multi:1", [amd, arm], ["amd64", "arm64"])
    index = cast(Index, multi.root)
    client = FakeClient(
        "r.example",
        {
            "base/app": {"1": amd.raw, "1-again": amd.raw},
            "multi": {
                "1": index.raw,
                str(amd.digest): amd.raw,
                str(arm.digest): arm.raw,
            },
            "empty": {},
        },
    )
    return client, amd, arm, index


def _walk(client: FakeClient, *args: Any, **kwargs: Any) -> Inventory:
    return inventory_from_registry(client, *args, **kwargs)


def test_registry_walk_follows_catalog_tags_and_indexes() -> None:
    client, amd, arm, index = _registry_fixture()
    inventory = _walk(client)
    assert inventory.complete
    assert inventory.sources == ["registry r.example"]
    shared = amd.layers[0].digest
    assert inventory.blobs[shared].repositories == {"r.example/base/app", "r.example/multi"}
    assert inventory.blobs[arm.layers[1].digest].repositories == {"r.example/multi"}
    assert inventory.blobs[amd.config.digest].size == amd.config.size
    assert {(i.reference, i.digest) for i in inventory.images} == {
        ("r.example/base/app:1", amd.digest),
        ("r.example/base/app:1-again", amd.digest),
        ("r.example/multi:1", index.digest),
    }
    # a manifest read once is not fetched again below another index or repository
    assert client.requests.count(f"manifest multi {amd.digest}") == 0
    assert client.requests.count(f"manifest multi {arm.digest}") == 1


def test_registry_walk_of_named_targets_skips_the_catalog() -> None:
    client, amd, _, _ = _registry_fixture()
    inventory = _walk(client, [("base/app", "1"), ("base/app", "1")])
    assert "catalog" not in client.requests
    assert not any(r.startswith("tags") for r in client.requests)
    assert set(inventory.blobs) == {d.digest for d in amd.blobs}


def test_registry_walk_bounds_mark_the_inventory_partial() -> None:
    client, _, _, _ = _registry_fixture()
    messages: list[str] = []

    class Recorder:
        def message(self, text: str) -> None:
            messages.append(text)

        def __getattr__(self, name: str) -> Any:
            return lambda *a, **k: None

    inventory = _walk(
        client, limits=WalkLimits(tags=1, manifests=2), progress=cast(Any, Recorder())
    )
    assert not inventory.complete
    assert any("only the first 1 of 2 tags" in m for m in messages)
    assert any("stopped after 2 manifests" in m for m in messages)
    assert sum(1 for r in client.requests if r.startswith("manifest")) == 2


def test_registry_walk_skips_what_vanished_and_says_so() -> None:
    client, _, _, _ = _registry_fixture()
    inventory = _walk(client, [("base/app", "gone"), ("nope", None)])
    assert not inventory.complete
    assert inventory.blobs == {}


def test_catalog_refused_says_how_to_name_repositories() -> None:
    client, _, _, _ = _registry_fixture()
    client.catalog_error = AuthError("denied")
    with pytest.raises(AuthError) as caught:
        _walk(client)
    assert caught.value.hint is not None
    assert "sneaker inventory r.example/REPOSITORY" in caught.value.hint


# -- the verb and the command -----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("localhost:5000", RegistrySource("localhost:5000")),
        ("registry.example", RegistrySource("registry.example")),
        ("localhost:5000/team/app", RegistrySource("localhost:5000", "team/app")),
        ("localhost:5000/team/app:1", RegistrySource("localhost:5000", "team/app", "1")),
        (
            f"r.example/app@{Digest.of_bytes(b'x')}",
            RegistrySource("r.example", "app", str(Digest.of_bytes(b"x"))),
        ),
    ],
)
def test_classify_registry_sources(text: str, expected: RegistrySource) -> None:
    assert classify_source(text) == expected


def test_classify_archives_and_mistakes(tmp_path: Path) -> None:
    (tmp_path / "old.tar").write_bytes(b"")
    (tmp_path / "split.tar.000").write_bytes(b"")
    assert classify_source(str(tmp_path / "old.tar")) == tmp_path / "old.tar"
    assert classify_source(str(tmp_path / "split.tar")) == tmp_path / "split.tar"
    with pytest.raises(UsageError, match="no such archive"):
        classify_source(str(tmp_path / "missing.tar"))
    with pytest.raises(UsageError, match="neither an archive nor a registry"):
        classify_source("justaword")


def test_verb_merges_sources_and_writes_the_file(tmp_path: Path) -> None:
    client, amd, _, _ = _registry_fixture()
    blobs = Blobs()
    record = make_record(blobs, "r.example/base/app:1", [{"other": b"o"}])
    archive = tmp_path / "old.tar"
    write_docker_archive([record], blobs, archive)
    out = tmp_path / "have.json"
    result = inventory(
        [str(archive), "r.example/base/app:1"],
        out,
        client_factory=lambda registry: client,
    )
    assert load_inventory(out).to_json() == result.to_json()
    assert result.sources == [f"archive {archive}", "registry r.example"]
    assert all(result.has(d.digest) for d in amd.blobs)
    assert all(result.has(d.digest) for d in record.blobs())
    with pytest.raises(UsageError, match="nothing to take an inventory of"):
        inventory([])


def test_command_writes_and_prints(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blobs = Blobs()
    record = make_record(blobs, "r.example/base/app:1", [SHARED])
    archive = tmp_path / "old.tar"
    write_docker_archive([record], blobs, archive)
    out = tmp_path / "have.json"
    assert main(["inventory", "-q", str(archive), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith(f"wrote {out}: 1 image, 2 blobs")
    assert json.loads(out.read_text())["format"] == "sneaker-inventory"
    assert main(["inventory", "-q", str(archive)]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads(out.read_text())
    assert main(["inventory", str(tmp_path / "nope.tar")]) == 2
    assert "no such archive" in capsys.readouterr().err


def test_registry_walk_reads_tags_that_start_like_a_digest() -> None:
    """cosign's ``sha256-<hex>.sig`` and the referrers fallback tag ``sha256-<hex>`` are tags."""
    client, amd, _, _ = _registry_fixture()
    tag = f"sha256-{amd.digest.hex}.sig"
    client.repos["base/app"][tag] = amd.raw
    inventory = _walk(client, [("base/app", tag)])
    assert inventory.complete
    assert set(inventory.blobs) == {d.digest for d in amd.blobs}
