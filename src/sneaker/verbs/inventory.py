"""``inventory``: what blobs a registry or an archive has, for ``pull --have`` to leave out.

The document is :mod:`sneaker.image.inventory`, the registry walk
:mod:`sneaker.transfer.walk`; taking one of an image source (an archive), and
reading and writing the file, are here. A
source is an archive when the path exists (or its split parts do); otherwise
it is a registry: ``HOST[:PORT]`` alone walks the registry's catalog,
``HOST/REPO`` every tag of one repository, ``HOST/REPO:TAG`` (or ``@DIGEST``)
one image. Several sources make one inventory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..archive import missing_archive, open_archive
from ..archive.delta import DeltaMarker
from ..archive.tar import atomic_file, check_output_path, refuse_overwriting_inputs
from ..errors import UsageError
from ..image.inventory import INVENTORY_KIND, Inventory
from ..image.records import ImageSource
from ..image.reference import bare_registry_host, parse_reference
from ..registry.mirrors import TargetClientFactory
from ..registry.options import RegistryOptions
from ..settings import load_settings
from ..transfer.walk import WalkLimits, inventory_from_registry
from ..util.jsondoc import read_document
from ..util.progress import NullProgress, Progress
from ..util.tempfiles import remove_stale

if TYPE_CHECKING:
    from ..registry.reader import RegistryReader

__all__ = [
    "RegistrySource",
    "classify_source",
    "inventory",
    "inventory_from_archive",
    "inventory_of_source",
    "load_base",
    "load_inventory",
    "write_inventory",
]


@dataclass(frozen=True)
class RegistrySource:
    """A registry, or one of its repositories (every tag, or one tag or digest)."""

    registry: str
    repository: str | None = None
    identifier: str | None = None


def _is_archive(text: str) -> bool:
    path = Path(text)
    return path.exists() or Path(f"{text}.000").exists()


def classify_source(text: str | Path) -> Path | RegistrySource:
    """An archive path (it exists, or its split parts do) or a registry source."""
    if isinstance(text, Path) or _is_archive(text):
        return Path(text)
    if text.endswith((".tar", "/", ".json")) or text.startswith((".", "/")):
        raise missing_archive(text)
    bare = text.rstrip("/")
    if "/" not in bare:
        host = bare_registry_host(bare)
        if host is not None:
            return RegistrySource(host)
        raise UsageError(
            f"{text!r} is neither an archive nor a registry",
            hint="name an archive that exists, a registry (localhost:5000), a repository "
            "(localhost:5000/team/app) or an image (localhost:5000/team/app:1)",
        )
    ref = parse_reference(bare, default_tag=None)
    identifier = str(ref.digest) if ref.digest is not None else ref.tag
    return RegistrySource(ref.registry, ref.repository, identifier)


def inventory(
    sources: Sequence[str | Path],
    output: Path | str | None = None,
    *,
    options: RegistryOptions | None = None,
    limits: WalkLimits | None = None,
    progress: Progress | None = None,
    client_factory: Callable[[str], RegistryReader] | None = None,
) -> Inventory:
    """One inventory of every source (archives and registries); written to ``output`` if given."""
    if not sources:
        raise UsageError(
            "nothing to take an inventory of",
            hint="name a registry or an archive: sneaker inventory localhost:5000 -o have.json",
        )
    progress = progress or NullProgress()
    classified = [classify_source(s) for s in sources]
    if output is not None:  # before any work: never replace a source with its inventory
        check_output_path(output)
        refuse_overwriting_inputs(output, [item for item in classified if isinstance(item, Path)])
    result = Inventory()
    with ExitStack() as stack:
        if client_factory is None:
            opts = options or RegistryOptions()
            settings = load_settings(plain_http=opts.plain_http)
            for item in classified:
                if not isinstance(item, Path):
                    settings.check_blocked(item.registry)
            # what the named registry itself holds: its insecure/blocked settings apply,
            # mirrors do not (a mirror's contents say nothing about the registry's)
            client_factory = stack.enter_context(TargetClientFactory(settings, opts))

        whole: set[str] = set()
        targets: dict[str, list[tuple[str, str | None]]] = {}
        for item in classified:
            if isinstance(item, Path):
                continue
            if item.repository is None:
                whole.add(item.registry)
            else:
                targets.setdefault(item.registry, []).append((item.repository, item.identifier))
        done: set[str] = set()
        for item in classified:
            if isinstance(item, Path):
                progress.message(f"reading {item}")
                result.merge(inventory_from_archive(item))
                continue
            if item.registry in done:
                continue
            done.add(item.registry)
            client = client_factory(item.registry)
            wanted = None if item.registry in whole else targets.get(item.registry)
            result.merge(inventory_from_registry(client, wanted, limits=limits, progress=progress))
    if output is not None:
        write_inventory(result, Path(output))
    return result


# --------------------------------------------------------------------------- files


def load_inventory(path: Path | str) -> Inventory:
    """Read an inventory JSON file."""
    path = Path(path)
    return Inventory.from_bytes(read_document(path, INVENTORY_KIND), where=str(path))


def write_inventory(inventory: Inventory, path: Path | str) -> None:
    """Write ``inventory`` to ``path`` through a temporary file and a rename.

    ``path`` is checked as every output is (:func:`sneaker.archive.tar.check_output_path`):
    a symlink is written through, a device, fifo, socket or directory refused.
    """
    path = check_output_path(path)
    remove_stale(path.parent)
    with atomic_file(path) as sink:
        sink.write(inventory.to_bytes())


def load_base(
    since: Iterable[Path | str] = (), have: Iterable[Path | str] = ()
) -> Inventory | None:
    """What the other side has: archives (``--since``) and inventory files (``--have``)
    merged; None when neither is given."""
    base: Inventory | None = None
    for part in [inventory_from_archive(p) for p in since] + [load_inventory(p) for p in have]:
        if base is None:
            base = part
        else:
            base.merge(part)
    return base


# --------------------------------------------------------------------------- image sources


def inventory_of_source(
    source: ImageSource, label: str, delta: DeltaMarker | None = None
) -> Inventory:
    """The inventory of an image source: the blobs it holds (and a delta's omitted layers)."""
    inventory = Inventory([label])
    names = list(source.names)
    for number, record in enumerate(source.records):
        ref = record.reference
        name = names[number] if number < len(names) else None
        inventory.add_image(str(ref) if ref is not None else name, record.root.digest)
        repository = ref.name if ref is not None else None
        for manifest in record.manifests():
            for desc in manifest.blobs:
                if source.has_blob(desc.digest):
                    inventory.add_blob(desc.digest, desc.size, repository)
                elif delta is not None and desc.digest in delta.omitted:
                    omitted = delta.omitted[desc.digest]
                    inventory.add_blob(desc.digest, desc.size, repository, *omitted.repositories)
    return inventory


def inventory_from_archive(path: Path | str) -> Inventory:
    """The inventory of an archive, layout or split set (a delta archive too)."""
    with open_archive(Path(path), allow_delta=True) as source:
        return inventory_of_source(source, f"archive {path}", source.delta)
