"""plan.json's shape and the fetch.sh generator (syntax under dash, shellcheck, offline runs)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from sneaker.image import mediatypes as mt
from sneaker.image.digest import Digest
from sneaker.image.model import Manifest, parse_manifest
from sneaker.image.platform import Platform
from sneaker.image.records import ImageRecord
from sneaker.image.reference import parse_reference
from sneaker.image.selection import PlatformRequest, build_subset_index
from sneaker.verbs.fetchscript import DEFAULT_JOBS, MAX_JOBS, FetchItem, render_fetch_script
from sneaker.verbs.plan import (
    PLAN_FORMAT,
    PLAN_VERSION,
    PlannedImage,
    blob_relpath,
    manifest_relpath,
    plan_document,
)
from tests.helpers import need

CONFIG = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
LAYER = b"layer-bytes" * 100


def _manifest(config: bytes, layers: list[bytes]) -> Manifest:
    doc = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "config": {
            "mediaType": mt.OCI_CONFIG,
            "digest": str(Digest.of_bytes(config)),
            "size": len(config),
        },
        "layers": [
            {
                "mediaType": mt.OCI_LAYER_GZIP,
                "digest": str(Digest.of_bytes(layer)),
                "size": len(layer),
            }
            for layer in layers
        ],
    }
    parsed = parse_manifest(json.dumps(doc).encode())
    assert isinstance(parsed, Manifest)
    return parsed


def _url_maker(host: str, repository: str):  # type: ignore[no-untyped-def]
    return lambda digest: f"http://{host}/v2/{repository}/blobs/{digest}"


def _planned(reference: str, manifest: Manifest) -> PlannedImage:
    ref = parse_reference(reference)
    return PlannedImage(
        record=ImageRecord(ref, manifest),
        api=f"http://{ref.registry}/v2/",
        source_digest=manifest.digest,
        platforms=(Platform("linux", "amd64"),),
        blob_url=_url_maker(ref.registry, ref.repository),
    )


def test_relpaths_are_windows_safe() -> None:
    digest = Digest.of_bytes(b"x")
    assert manifest_relpath(digest) == f"manifests/sha256-{digest.hex}.json"
    assert blob_relpath(digest) == f"blobs/sha256/{digest.hex}"
    assert ":" not in manifest_relpath(digest) + blob_relpath(digest)


def test_plan_document_shape() -> None:
    manifest = _manifest(CONFIG, [LAYER])
    image = _planned("127.0.0.1:5000/team/app:1", manifest)
    request = PlatformRequest(platforms=(Platform("linux", "amd64"),))
    doc = plan_document([image], request)
    config_digest = str(Digest.of_bytes(CONFIG))
    layer_digest = str(Digest.of_bytes(LAYER))
    assert doc == {
        "format": PLAN_FORMAT,
        "version": PLAN_VERSION,
        "created_by": doc["created_by"],
        "platform": {
            "all": False,
            "platforms": ["linux/amd64"],
            "explicit": True,
            "single": True,
        },
        "images": [
            {
                "reference": "127.0.0.1:5000/team/app:1",
                "registry": "127.0.0.1:5000",
                "api": "http://127.0.0.1:5000/v2/",
                "repository": "team/app",
                "source_digest": str(manifest.digest),
                "root": {
                    "digest": str(manifest.digest),
                    "mediaType": mt.OCI_MANIFEST,
                    "size": len(manifest.raw),
                    "path": f"manifests/sha256-{manifest.digest.hex}.json",
                },
                "rewritten": False,
                "platforms": ["linux/amd64"],
                "children": [],
                "blobs": [
                    {
                        "digest": config_digest,
                        "mediaType": mt.OCI_CONFIG,
                        "size": len(CONFIG),
                        "path": f"blobs/sha256/{config_digest[7:]}",
                        "kind": "config",
                        "url": f"http://127.0.0.1:5000/v2/team/app/blobs/{config_digest}",
                    },
                    {
                        "digest": layer_digest,
                        "mediaType": mt.OCI_LAYER_GZIP,
                        "size": len(LAYER),
                        "path": f"blobs/sha256/{layer_digest[7:]}",
                        "kind": "layer",
                        "url": f"http://127.0.0.1:5000/v2/team/app/blobs/{layer_digest}",
                    },
                ],
            }
        ],
        "blobs": {"count": 2, "size": len(CONFIG) + len(LAYER)},
    }
    assert doc["created_by"].startswith("sneaker ")
    json.dumps(doc)  # serialisable as is


def test_plan_document_index_children_and_shared_blobs() -> None:
    amd = _manifest(CONFIG, [LAYER])
    arm_config = CONFIG.replace(b"amd64", b"arm64")
    arm = _manifest(arm_config, [LAYER])
    index_doc = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_INDEX,
        "manifests": [
            {
                **amd.descriptor.to_json(),
                "platform": {"os": "linux", "architecture": "amd64"},
            },
            {
                **arm.descriptor.to_json(),
                "platform": {"os": "linux", "architecture": "arm64"},
            },
        ],
    }
    index = parse_manifest(json.dumps(index_doc).encode())
    subset = build_subset_index(index, index.manifests)  # type: ignore[arg-type]
    ref = parse_reference("docker.io/org/multi:2")
    image = PlannedImage(
        record=ImageRecord(ref, subset, {amd.digest: amd, arm.digest: arm}, rewritten=True),
        api="https://registry-1.docker.io/v2/",
        source_digest=index.digest,
        platforms=(Platform("linux", "amd64"), Platform("linux", "arm64")),
        blob_url=_url_maker("registry-1.docker.io", ref.repository),
    )
    request = PlatformRequest(platforms=(Platform("linux", "amd64"), Platform("linux", "arm64")))
    doc = plan_document([image], request)
    entry = doc["images"][0]
    assert doc["platform"]["single"] is False
    assert entry["rewritten"] is True
    assert entry["source_digest"] == str(index.digest)
    assert entry["root"]["digest"] == str(subset.digest) != str(index.digest)
    assert [c["digest"] for c in entry["children"]] == [str(amd.digest), str(arm.digest)]
    assert [b["kind"] for b in entry["blobs"]] == ["config", "layer", "config"]
    assert entry["blobs"][1]["url"] == (
        f"http://registry-1.docker.io/v2/org/multi/blobs/{Digest.of_bytes(LAYER)}"
    )
    assert doc["blobs"]["count"] == 3


# -- fetch.sh -------------------------------------------------------------------------------


def _items() -> list[FetchItem]:
    blobs = [CONFIG, LAYER, b""]
    items = []
    for n, data in enumerate(blobs):
        digest = Digest.of_bytes(data)
        repo = "team/app" if n < 2 else "other/repo"
        items.append(
            FetchItem(
                "127.0.0.1:1",
                repo,
                f"http://127.0.0.1:1/v2/{repo}/blobs/{digest}",
                digest.hex,
                len(data),
            )
        )
    return items


def test_fetch_script_is_deterministic_and_lists_each_blob_once() -> None:
    items = _items()
    script = render_fetch_script([*items, items[0]], version="9.9")
    assert script == render_fetch_script(items, version="9.9")
    assert script.startswith("#!/bin/sh\n")
    calls = [line for line in script.splitlines() if line.startswith("fetch '")]
    assert len(calls) == 3
    assert (
        calls[0] == f"fetch '127.0.0.1:1/team/app' '{items[0].url}' '{items[0].hex}' {len(CONFIG)}"
    )


def test_fetch_script_refuses_unsafe_values() -> None:
    bad = FetchItem("h", "r", "http://h/v2/r/blobs/x'$(reboot)'", "a" * 64, 1)
    with pytest.raises(ValueError, match="unsafe"):
        render_fetch_script([bad], version="1")


def test_fetch_script_parses_with_dash(tmp_path: Path) -> None:
    dash = need("dash")
    script = tmp_path / "fetch.sh"
    script.write_text(render_fetch_script(_items(), version="1"))
    result = subprocess.run([dash, "-n", str(script)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_fetch_script_passes_shellcheck(tmp_path: Path) -> None:
    shellcheck = need("shellcheck")
    script = tmp_path / "fetch.sh"
    script.write_text(render_fetch_script(_items(), version="1"))
    result = subprocess.run(
        [shellcheck, "--shell=sh", "--severity=style", str(script)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _tool_dir(tmp_path: Path, tools: list[str]) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in tools:
        (bin_dir / tool).symlink_to(need(tool))
    return bin_dir


BASE_TOOLS = ["curl", "sed", "tr", "wc", "mkdir", "mv", "rm"]


def _run_script(
    plan: Path, bin_dir: Path, extra: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``sh fetch.sh`` with PATH = ``bin_dir``, TMPDIR = ``PLAN/../tmpdir``; afterwards no
    temporary state is left, there or in the plan directory."""
    tmpdir = _tmpdir(plan)
    result = subprocess.run(
        [str(bin_dir / "sh"), "fetch.sh"],
        cwd=plan,
        env={"PATH": str(bin_dir), "TMPDIR": str(tmpdir), **(extra or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert not [p.name for p in tmpdir.iterdir() if p.name.startswith("sneaker-fetch.")]
    assert not list(plan.glob(".fetch-tmp.*")), "nothing temporary in the plan directory"
    return result


def _tmpdir(plan: Path) -> Path:
    tmpdir = plan.parent / "tmpdir"
    tmpdir.mkdir(exist_ok=True)
    return tmpdir


def _plan_dir_with_blobs(tmp_path: Path) -> tuple[Path, list[FetchItem]]:
    plan = tmp_path / "plan"
    store = plan / "blobs" / "sha256"
    store.mkdir(parents=True)
    items = _items()
    for data, item in zip([CONFIG, LAYER, b""], items, strict=True):
        (store / item.hex).write_bytes(data)
    (plan / "fetch.sh").write_text(render_fetch_script(items, version="1"))
    return plan, items


@pytest.mark.parametrize("jobs", [None, "1", "3", str(MAX_JOBS)])
def test_fetch_script_offline_all_present(tmp_path: Path, jobs: str | None) -> None:
    plan, _ = _plan_dir_with_blobs(tmp_path)
    bin_dir = _tool_dir(tmp_path, [*BASE_TOOLS, "sha256sum"])
    (bin_dir / "sh").symlink_to(need("dash"))
    result = _run_script(plan, bin_dir, None if jobs is None else {"SNEAKER_FETCH_JOBS": jobs})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "all 3 blobs are present and checked (0 fetched, 3 already there)" in result.stdout


def test_fetch_script_without_sha256sum_checks_sizes(tmp_path: Path) -> None:
    plan, _ = _plan_dir_with_blobs(tmp_path)
    bin_dir = _tool_dir(tmp_path, BASE_TOOLS)
    (bin_dir / "sh").symlink_to(need("dash"))
    result = _run_script(plan, bin_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "sha256sum not found: files are checked by size only" in result.stderr


def test_fetch_script_header_documents_the_jobs_variable() -> None:
    header = render_fetch_script(_items(), version="1").split("\nset -u\n", 1)[0]
    text = " ".join(line.lstrip("# ") for line in header.splitlines())
    assert (
        "Several blobs download at once: SNEAKER_FETCH_JOBS=N fetches up to N at a time "
        f"(1 to {MAX_JOBS}, default {DEFAULT_JOBS}); SNEAKER_FETCH_JOBS=1 fetches one after "
        "another. Ctrl-C stops every download; run the script again to resume them."
    ) in text


@pytest.mark.parametrize("jobs", ["0", "-1", "1.5", "two", str(MAX_JOBS + 1), "007"])
def test_fetch_script_refuses_a_bad_jobs_value(tmp_path: Path, jobs: str) -> None:
    plan, _ = _plan_dir_with_blobs(tmp_path)
    bin_dir = _tool_dir(tmp_path, [*BASE_TOOLS, "sha256sum"])
    (bin_dir / "sh").symlink_to(need("dash"))
    result = _run_script(plan, bin_dir, {"SNEAKER_FETCH_JOBS": jobs})
    assert result.returncode == 2
    assert result.stderr == (
        f"fetch.sh: SNEAKER_FETCH_JOBS must be a whole number from 1 to {MAX_JOBS}, not '{jobs}'\n"
    )


def test_fetch_script_with_no_blobs(tmp_path: Path) -> None:
    plan = tmp_path / "plan"
    plan.mkdir()
    (plan / "fetch.sh").write_text(render_fetch_script([], version="1"))
    bin_dir = _tool_dir(tmp_path, [*BASE_TOOLS, "sha256sum"])
    (bin_dir / "sh").symlink_to(need("dash"))
    result = _run_script(plan, bin_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == "all 0 blobs are present and checked (0 fetched, 0 already there)\n"


@pytest.mark.parametrize("jobs", ["1", "3"])
def test_fetch_script_names_the_blob_it_cannot_fetch(tmp_path: Path, jobs: str) -> None:
    """One blob damaged, its registry unreachable: the others are kept, that one is named."""
    plan, items = _plan_dir_with_blobs(tmp_path)
    damaged = plan / "blobs" / "sha256" / items[1].hex
    damaged.write_bytes(b"x" * len(LAYER))
    bin_dir = _tool_dir(tmp_path, [*BASE_TOOLS, "sha256sum"])
    (bin_dir / "sh").symlink_to(need("dash"))
    result = _run_script(plan, bin_dir, {"SNEAKER_FETCH_JOBS": jobs})
    assert result.returncode == 1, result.stdout + result.stderr
    hex_ = items[1].hex
    assert result.stdout == f"fetching sha256:{hex_} ({len(LAYER)} bytes) from {items[1].url}\n"
    errors = result.stderr.splitlines()
    assert (
        errors[0]
        == f"fetch.sh: sha256:{hex_}: the file already there is damaged: fetching it again"
    )
    assert errors[1:-1], "each failed attempt is reported"
    assert all(
        e.startswith(f"fetch.sh: sha256:{hex_}: curl failed (exit 7, HTTP 000): ")
        for e in errors[1:-1]
    )
    assert errors[-1] == "fetch.sh: 1 of 3 blobs are missing or damaged; run fetch.sh again"
    assert not damaged.exists()
    for item in (items[0], items[2]):
        assert Digest.of_bytes((plan / "blobs" / "sha256" / item.hex).read_bytes()).hex == item.hex


def _dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_fetch_script_removes_the_temporary_state_of_killed_runs(tmp_path: Path) -> None:
    """What runs killed by SIGKILL left (credentials included) goes once the owner is gone:
    the private directories in TMPDIR, and the .fetch-tmp.PID older scripts left in the plan
    directory. Those of a live process stay."""
    plan, _ = _plan_dir_with_blobs(tmp_path)
    tmpdir = _tmpdir(plan)
    dead, alive = _dead_pid(), os.getpid()
    secret = 'user = "alice:s3cret-pw"\n'
    left = [
        plan / f".fetch-tmp.{dead}" / "job1",
        tmpdir / f"sneaker-fetch.{dead}.0" / "job2",
        plan / f".fetch-tmp.{alive}" / "job1",
        tmpdir / f"sneaker-fetch.{alive}.3" / "job1",
    ]
    for job in left:
        job.mkdir(parents=True)
        (job / "token.conf").write_text(secret)
    bin_dir = _tool_dir(tmp_path, [*BASE_TOOLS, "sha256sum"])
    (bin_dir / "sh").symlink_to(need("dash"))
    result = subprocess.run(
        [str(bin_dir / "sh"), "fetch.sh"],
        cwd=plan,
        env={"PATH": str(bin_dir), "TMPDIR": f"{tmpdir}/"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert [p.parent.exists() for p in left] == [False, False, True, True]
    assert sorted(p.name for p in tmpdir.iterdir()) == [f"sneaker-fetch.{alive}.3"]
