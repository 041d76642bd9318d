"""``inventory``: what blobs a registry or an archive has, for ``pull --have`` to leave out.

Composition only: the model and the readers are :mod:`sneaker.inventory`. A
source is an archive when the path exists (or its split parts do); otherwise
it is a registry: ``HOST[:PORT]`` alone walks the registry's catalog,
``HOST/REPO`` every tag of one repository, ``HOST/REPO:TAG`` (or ``@DIGEST``)
one image. Several sources make one inventory.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import UsageError
from ..image.reference import bare_registry_host, parse_reference
from ..inventory import (
    Inventory,
    WalkLimits,
    inventory_from_archive,
    inventory_from_registry,
    write_inventory,
)
from ..util.progress import NullProgress, Progress

if TYPE_CHECKING:
    from ..registry.client import RegistryClient, RegistryOptions

__all__ = ["RegistrySource", "classify_source", "inventory"]


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
        raise UsageError(
            f"{text}: no such archive",
            hint="a split archive is named by its base name (OUT for OUT.000, OUT.001, ...)",
        )
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
    client_factory: Callable[[str], RegistryClient] | None = None,
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
        from ..archive.tar import check_output_path, refuse_overwriting_inputs

        check_output_path(output)
        refuse_overwriting_inputs(output, [item for item in classified if isinstance(item, Path)])
    result = Inventory()
    with ExitStack() as stack:
        if client_factory is None:
            from ..registry.client import RegistryOptions as _Options
            from ..registry.mirrors import make_client_factory
            from ..settings import load_settings

            opts = options or _Options()
            settings = load_settings(plain_http=opts.plain_http)
            for item in classified:
                if not isinstance(item, Path):
                    settings.check_blocked(item.registry)
            # what the named registry itself holds: its insecure/blocked settings apply,
            # mirrors do not (a mirror's contents say nothing about the registry's)
            client_factory = stack.enter_context(make_client_factory(settings, opts, push=True))

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
