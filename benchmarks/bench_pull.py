#!/usr/bin/env python3
"""Pull throughput: sneaker against skopeo, docker and the curl limit, in one run.

Not a test (pytest never collects it): a script that

1. starts a local registry (CNCF distribution, from ``tests/fixtures/`` used as a library);
2. writes two OCI layouts as test data, a *large* image (a few layers of
   moderately compressible content, hundreds of MB) and a *many-small-layers*
   image, and copies them into the registry with ``skopeo copy`` (never sneaker);
3. times, for each image and in the same run, interleaved round by round:

   * ``curl``: every blob (config and layers, listed from the registry's
     manifest) fetched at once into files by one ``curl --parallel``: the limit;
   * ``sneaker pull`` to a docker archive and to an OCI layout, each with a cold
     cache, and again to a docker archive from a warm cache (as it is, and with its
     verified records removed, so that every cached blob is hashed before it is used);
   * ``cat``: the warm-cache limit, the cached blobs concatenated into one file;
   * ``skopeo copy`` to ``docker-archive:`` and to ``oci:``;
   * ``docker pull`` + ``docker save`` (a private dockerd; ``--no-docker`` skips it);

4. times ``sneaker --version`` (and ``python -c pass`` for reference);
5. prints the medians and their RATIOS to the curl limit (machines are noisy;
   ratios measured side by side travel better than seconds).

Usage: ``python benchmarks/bench_pull.py [--repeat 3] [--large-mb 600] [--json FILE]``
(root is needed for the docker rows). See ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks.benchlib import (  # noqa: E402
    cleaner,
    log,
    module_argv,
    run_timed,
    sneaker_argv,
    sneaker_env,
)
from tests.fixtures.process import remove_tree, short_tempdir  # noqa: E402
from tests.fixtures.random_images import RandomLayout, make_random_layout  # noqa: E402
from tests.fixtures.registry import RegistryProcess, start_plain_registry  # noqa: E402
from tests.fixtures.seeding import seed_oci_layout  # noqa: E402
from tests.fixtures.tools import empty_auth_file  # noqa: E402

ACCEPT = ", ".join(
    [
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)

WARM = "sneaker warm cache -> docker archive"
WARM_HASHING = "sneaker warm cache, every blob hashed -> docker archive"
TARGETS = {
    "large": "sneaker <= 1.25x curl (either format)",
    "small": "sneaker <= 1.5x curl (either format)",
}


@dataclass
class Image:
    name: str
    repository: str
    layout: RandomLayout
    blob_urls: list[tuple[str, str]] = field(default_factory=list)  # (hex, url)

    @property
    def ref_path(self) -> str:
        return f"{self.repository}:1"


@dataclass
class Case:
    image: str
    name: str
    prepare: Callable[[], None]
    run: list[str]
    env: dict[str, str] | None = None
    times: list[float] = field(default_factory=list)


def _blob_urls(registry_url: str, image: Image) -> list[tuple[str, str]]:
    """The config and layer URLs, read from the manifest the registry serves."""
    request = urllib.request.Request(
        f"{registry_url}/v2/{image.repository}/manifests/1", headers={"Accept": ACCEPT}
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=60) as response:
        manifest = json.loads(response.read())
    descs = [manifest["config"], *manifest["layers"]]
    return [
        (d["digest"].split(":", 1)[1], f"{registry_url}/v2/{image.repository}/blobs/{d['digest']}")
        for d in descs
    ]


def _make_images(work: Path, args: argparse.Namespace) -> list[tuple[str, RandomLayout]]:
    large_total = args.large_mb * 1000 * 1000
    # unequal layers, as real images have: 40%, 30%, 20%, 10% for four
    weights = list(range(args.large_layers, 0, -1))
    large_sizes = [large_total * w // sum(weights) for w in weights]
    log(f"writing the large image: {len(large_sizes)} layers, {args.large_mb} MB before gzip")
    large = make_random_layout(work / "large", large_sizes, kind="mixed", seed="bench-large")
    log(f"writing the small image: {args.small_layers} layers")
    small_sizes = [16_000 + (i * 7919) % 240_000 for i in range(args.small_layers)]
    small = make_random_layout(work / "small", small_sizes, kind="mixed", seed="bench-small")
    return [("large", large), ("small", small)]


def _version_times(argv: list[str], env: dict[str, str], n: int) -> list[float]:
    run_timed([*argv, "--version"], env=env)  # byte code cached
    return [run_timed([*argv, "--version"], env=env) for _ in range(n)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="rounds (median reported)")
    parser.add_argument("--large-mb", type=int, default=600, help="large image, MB before gzip")
    parser.add_argument("--large-layers", type=int, default=4)
    parser.add_argument("--small-layers", type=int, default=48)
    parser.add_argument("--jobs", type=int, default=None, help="sneaker -j (default: its own)")
    parser.add_argument("--no-docker", action="store_true", help="skip docker pull + save")
    parser.add_argument("--json", type=Path, help="also write the raw timings here")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--no-skopeo", action="store_true", help="skip the skopeo rows")
    parser.add_argument(
        "--no-sync",
        action="store_true",
        help="do not sync before each timed run (dirty pages left by one run then slow "
        "the next: a GB-scale run writes 1 to 2 GB)",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        metavar="SRC",
        help="also time the sneaker in this source directory (the src/ of another checkout, "
        "e.g. from `git worktree add`), side by side with this one",
    )
    args = parser.parse_args()

    work = short_tempdir("snkbench-")
    registry: RegistryProcess | None = None
    docker = None
    load_before = os.getloadavg()
    try:
        (work / "registry").mkdir()
        registry = start_plain_registry(work / "registry")
        info = registry.info
        images: list[Image] = []
        for name, layout in _make_images(work, args):
            image = Image(name, f"bench/{name}", layout)
            log(f"skopeo copy oci:{layout.path} -> {info.host}/{image.ref_path}")
            seed_oci_layout(info, layout.path, "img", image.ref_path, all_images=False)
            image.blob_urls = _blob_urls(info.url, image)
            images.append(image)

        if not args.no_docker:
            from tests.fixtures.docker import start_docker

            log("starting a private dockerd")
            docker = start_docker()

        sneaker = sneaker_argv()
        env = sneaker_env(work)
        if args.baseline is not None:  # both run the same way, each from its source tree
            sneaker, own_path = module_argv(REPO_ROOT / "src")
            env.update(own_path)
        skopeo_env = {**env, "REGISTRY_AUTH_FILE": str(empty_auth_file())}
        skopeo = ["skopeo", "--insecure-policy", "copy", "--src-tls-verify=false"]
        jobs = ["-j", str(args.jobs)] if args.jobs else []
        out = work / "out"
        out.mkdir()
        # warm up: byte code compiled and cached, registry files in the page cache
        run_timed([*sneaker, "pull", "-q", "--no-cache", "-o", str(out / "warmup.tar"),
                   f"{info.host}/{images[1].ref_path}"], env=env)  # fmt: skip

        cases: list[Case] = []
        for image in images:
            ref = f"{info.host}/{image.ref_path}"
            n = image.name
            curl_dir = out / f"{n}-curl"
            curl = ["curl", "--silent", "--show-error", "--fail", "--noproxy", "*",
                    "--parallel", "--parallel-max", "64"]  # fmt: skip
            for hexdigest, url in image.blob_urls:
                curl += ["-o", str(curl_dir / hexdigest), url]

            def make_dir(path: Path = curl_dir) -> None:
                cleaner(path)()
                path.mkdir()

            cold = work / f"{n}-cache-cold"
            warm = work / f"{n}-cache-warm"
            tar = out / f"{n}.tar"
            layout_dir = out / f"{n}-oci"
            pull = [*sneaker, "pull", "-q", *jobs]
            base_cases: list[Case] = []
            if args.baseline is not None:
                base_sneaker, base_path = module_argv(args.baseline)
                base_env = {**env, **base_path}
                base_pull = [*base_sneaker, "pull", "-q", *jobs]
                base_cases = [
                    Case(n, "baseline sneaker -> docker archive", cleaner(cold, tar),
                         [*base_pull, "--cache-dir", str(cold), "-o", str(tar), ref], base_env),
                    Case(n, "baseline sneaker -> OCI layout", cleaner(cold, layout_dir),
                         [*base_pull, "--cache-dir", str(cold), "--format", "oci",
                          "-o", f"{layout_dir}/", ref], base_env),
                    Case(n, f"baseline {WARM}", cleaner(tar),
                         [*base_pull, "--cache-dir", str(warm), "-o", str(tar), ref], base_env),
                ]  # fmt: skip
            cases += [
                Case(n, "curl (limit)", make_dir, curl),
                Case(n, "sneaker -> docker archive", cleaner(cold, tar),
                     [*pull, "--cache-dir", str(cold), "-o", str(tar), ref], env),
                Case(n, "sneaker -> OCI layout", cleaner(cold, layout_dir),
                     [*pull, "--cache-dir", str(cold), "--format", "oci",
                      "-o", f"{layout_dir}/", ref], env),
                Case(n, WARM, cleaner(tar),
                     [*pull, "--cache-dir", str(warm), "-o", str(tar), ref], env),
                # the cache's verified records removed: every cached blob is hashed before
                # it is used, the cost of a policy that hashes on every reuse
                Case(n, WARM_HASHING, cleaner(tar, warm / "verified"),
                     [*pull, "--cache-dir", str(warm), "-o", str(tar), ref], env),
                Case(n, "cat cached blobs > file (warm limit)", cleaner(tar),
                     ["sh", "-c", f'cat "{warm}"/blobs/sha256/* > "{tar}"']),
                *base_cases,
            ]  # fmt: skip
            if not args.no_skopeo:
                cases += [
                    Case(n, "skopeo -> docker-archive", cleaner(tar),
                         [*skopeo, f"docker://{ref}", f"docker-archive:{tar}:{ref}"], skopeo_env),
                    Case(n, "skopeo -> oci", cleaner(layout_dir),
                         [*skopeo, f"docker://{ref}", f"oci:{layout_dir}:img"], skopeo_env),
                ]  # fmt: skip
            if docker is not None:
                dock = [docker.client, "-H", docker.host]

                def docker_clean(ref: str = ref, tar: Path = tar) -> None:
                    assert docker is not None
                    docker.run("rmi", "-f", ref, check=False)
                    docker.run("image", "prune", "-f", check=False)
                    cleaner(tar)()

                cases.append(
                    Case(n, "docker pull + docker save", docker_clean,
                         ["sh", "-c", f'{" ".join(dock)} pull -q {ref} >/dev/null && '
                                      f'{" ".join(dock)} save -o "{tar}" {ref}'],
                         {**os.environ, **docker.env})
                )  # fmt: skip
            # fill the warm cache once
            run_timed([*pull, "--cache-dir", str(warm), "-o", str(out / "fill.tar"), ref], env=env)
            (out / "fill.tar").unlink()

        for round_no in range(args.repeat):
            for case in cases:
                case.prepare()
                if not args.no_sync:
                    os.sync()  # no run pays for writing back what the one before it left
                elapsed = run_timed(case.run, env=case.env)
                case.times.append(elapsed)
                log(f"round {round_no + 1}: {case.image:5} {case.name:40} {elapsed:7.2f} s")

        version = _version_times(sneaker, env, 10)
        python_start = [run_timed([sys.executable, "-c", "pass"], env=env) for _ in range(10)]
        load_after = os.getloadavg()

        report = _report(images, cases, version, python_start, args, load_before, load_after)
        print(report)
        if args.json:
            args.json.write_text(
                json.dumps(
                    {
                        "cases": [
                            {"image": c.image, "name": c.name, "times": c.times} for c in cases
                        ],
                        "version": version,
                        "python_start": python_start,
                        "load": [load_before, load_after],
                    },
                    indent=2,
                )
            )
    finally:
        if docker is not None:
            docker.stop()
        if registry is not None:
            registry.stop()
        if args.keep:
            log(f"kept {work}")
        else:
            remove_tree(work)
    return 0


def _report(
    images: list[Image],
    cases: list[Case],
    version: list[float],
    python_start: list[float],
    args: argparse.Namespace,
    load_before: tuple[float, float, float],
    load_after: tuple[float, float, float],
) -> str:
    lines = [
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, load average {load_before[0]:.1f} before / "
        f"{load_after[0]:.1f} after; {args.repeat} rounds, medians",
        "",
    ]
    for image in images:
        mine = [c for c in cases if c.image == image.name]
        limit = statistics.median(mine[0].times)
        size = image.layout.total_size
        lines += [
            f"{image.name} image: {len(image.layout.layers)} layers, {size / 1e6:.1f} MB of "
            f"blobs; target: {TARGETS[image.name]}",
            "",
            "| method | median s | ratio to curl |",
            "|---|---:|---:|",
        ]
        for case in mine:
            median = statistics.median(case.times)
            lines.append(f"| {case.name} | {median:.2f} | {median / limit:.2f}x |")
        by_name = {c.name: c for c in mine}
        cold, warm = by_name["sneaker -> docker archive"], by_name[WARM]
        # derived, round by round: what the download itself costs, without start-up,
        # resolution and the archive write (which a warm re-pull also pays)
        download = statistics.median(c - w for c, w in zip(cold.times, warm.times, strict=True))
        lines.append(
            f"| *derived: sneaker cold - warm (the download itself)* | {download:.2f} | "
            f"{download / limit:.2f}x |"
        )
        lines.append("")
    lines += [
        "| start-up | median s |",
        "|---|---:|",
        f"| sneaker --version | {statistics.median(version):.3f} |",
        f"| python -c pass | {statistics.median(python_start):.3f} |",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
