"""Test data for ``bench_wan.py``: a small image and a fleet of small multi-platform
images sharing a base layer, written as OCI layouts (``tests/fixtures/random_images.py``
for the layers) and copied into a registry with ``skopeo`` (never with sneaker).
A library, not a script.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.benchlib import log
from tests.fixtures.random_images import (
    OCI_CONFIG,
    OCI_INDEX,
    OCI_MANIFEST,
    BlobInfo,
    RandomLayout,
    make_random_layout,
)
from tests.fixtures.registry import RegistryInfo
from tests.fixtures.seeding import seed_oci_layout

SMALL_RAW = 1_800_000  # one layer, about 1.1 MB gzipped: busybox-sized
BASE_RAW = 4_000_000  # the fleet's shared base layer (one per platform): about 2.5 MB
PLATFORMS = ("amd64", "arm64")


@dataclass(frozen=True)
class Workload:
    """Images in the registries and what a perfect pull of this machine's platform moves."""

    name: str
    title: str
    repositories: list[str]
    index: bool  # multi-platform: an index first
    nbytes: int  # index, manifest, config and layers (a shared layer once)
    blobs: int  # configs and layers downloaded (a shared layer once)

    def refs(self, host: str) -> list[str]:
        return [f"{host}/{repository}:1" for repository in self.repositories]


def machine_arch() -> str:
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(machine, machine)


def _store_json(layout: Path, media_type: str, doc: dict[str, Any]) -> BlobInfo:
    data = json.dumps(doc, sort_keys=True).encode()
    hexdigest = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256" / hexdigest).write_bytes(data)
    return BlobInfo(f"sha256:{hexdigest}", len(data), media_type)


def _descriptor(blob: BlobInfo, **extra: Any) -> dict[str, Any]:
    return {"mediaType": blob.media_type, "digest": blob.digest, "size": blob.size, **extra}


def _link_blobs(source: RandomLayout, layout: Path) -> None:
    for blob in source.blobs:
        target = layout / "blobs" / "sha256" / blob.hex
        if not target.exists():
            os.link(source.blob_path(blob), target)


def _diff_ids(source: RandomLayout) -> list[str]:
    config = json.loads(source.blob_path(source.config).read_bytes())
    return list(config["rootfs"]["diff_ids"])


def build_small(root: Path) -> tuple[RandomLayout, int]:
    """One single-platform image with one busybox-sized layer; the bytes a pull moves."""
    layout = make_random_layout(root / "small", [SMALL_RAW], kind="mixed", seed="wan-small")
    return layout, layout.manifest.size + layout.total_size


def build_fleet(root: Path, count: int) -> tuple[Path, list[str], int, int]:
    """An OCI layout of ``count`` images, each an index of linux/amd64 and linux/arm64:
    per platform, a base layer every image shares and three small layers of its own.
    Returns the layout, its ref names, and the bytes and blobs a pull of ``count`` images
    for this machine's platform moves (indexes, manifests, configs, layers; the base once).
    """
    layout = root / "fleet"
    (layout / "blobs" / "sha256").mkdir(parents=True)
    arch = machine_arch()
    bases = {
        p: make_random_layout(root / f"base-{p}", [BASE_RAW], kind="mixed", seed=f"wan-base-{p}")
        for p in PLATFORMS
    }
    for base in bases.values():
        _link_blobs(base, layout)
    nbytes = bases[arch].layers[0].size if arch in bases else 0
    blobs = 1
    names: list[str] = []
    entries: list[dict[str, Any]] = []
    for i in range(count):
        children: list[dict[str, Any]] = []
        for p in PLATFORMS:
            sizes = [520_000, 260_000, 60_000 + (i * 7919) % 160_000]
            app = make_random_layout(
                root / f"app-{i:02d}-{p}", sizes, kind="mixed", seed=f"wan-{i}-{p}"
            )
            _link_blobs(app, layout)
            base = bases[p]
            plat: dict[str, Any] = {"architecture": p, "os": "linux"}
            if p == "arm64":
                plat["variant"] = "v8"
            config = _store_json(
                layout,
                OCI_CONFIG,
                {
                    **plat,
                    "config": {"Env": [f"APP=fleet-{i:02d}"], "Cmd": ["/bin/app"]},
                    "rootfs": {"type": "layers", "diff_ids": _diff_ids(base) + _diff_ids(app)},
                    "history": [{"created_by": f"layer {n}"} for n in range(1 + len(sizes))],
                },
            )
            layers = [base.layers[0], *app.layers]
            manifest = _store_json(
                layout,
                OCI_MANIFEST,
                {
                    "schemaVersion": 2,
                    "mediaType": OCI_MANIFEST,
                    "config": _descriptor(config),
                    "layers": [_descriptor(layer) for layer in layers],
                },
            )
            children.append(_descriptor(manifest, platform=plat))
            if p == arch:
                nbytes += manifest.size + config.size + sum(x.size for x in app.layers)
                blobs += 1 + len(app.layers)
        index = _store_json(
            layout, OCI_INDEX, {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children}
        )
        nbytes += index.size
        name = f"fleet-{i:02d}"
        names.append(name)
        entries.append(_descriptor(index, annotations={"org.opencontainers.image.ref.name": name}))
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    (layout / "index.json").write_text(
        json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries})
    )
    return layout, names, nbytes, blobs


def seed_workloads(info: RegistryInfo, data: Path, fleet_size: int) -> list[Workload]:
    small, small_bytes = build_small(data)
    log(f"skopeo copy: small image ({small_bytes / 1e6:.2f} MB)")
    seed_oci_layout(info, small.path, small.ref_name, "bench/small:1", all_images=False)
    fleet, names, fleet_bytes, fleet_blobs = build_fleet(data, fleet_size)
    log(f"skopeo copy --all: {fleet_size} images ({fleet_bytes / 1e6:.1f} MB for this platform)")
    for name in names:
        seed_oci_layout(info, fleet, name, f"bench/{name}:1")
    return [
        Workload(
            "small",
            f"one small image (1 layer, {small_bytes / 1e6:.2f} MB, single platform)",
            ["bench/small"],
            index=False,
            nbytes=small_bytes,
            blobs=2,
        ),
        Workload(
            "fleet",
            f"{fleet_size} small multi-platform images into one archive ({fleet_blobs} blobs, "
            f"{fleet_bytes / 1e6:.1f} MB for {machine_arch()}, a base layer shared)",
            [f"bench/{name}" for name in names],
            index=True,
            nbytes=fleet_bytes,
            blobs=fleet_blobs,
        ),
    ]
