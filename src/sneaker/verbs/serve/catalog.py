"""What ``serve`` answers from: repositories, tags, manifests and blobs of every archive,
indexed once at start-up (read-only afterwards), with the names each image is served under.

Referrers too: every manifest of a repository whose ``subject`` is a digest is listed
under it (:attr:`Repository.referrers`, in archive order), and each such digest gets
its fallback tag ``sha256-<hex>`` holding the same OCI index the referrers endpoint
answers, as a registry kept by clients would (unless an archive has a tag of that name).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ...image import mediatypes as mt
from ...image.artifacts import digest_tag, referrer_descriptor, referrers_index
from ...image.digest import Digest
from ...image.model import Descriptor, Index, Manifest, parse_manifest
from ...image.records import ImageSource
from ...image.reference import DOCKER_HUB, Reference
from .protocol import NAME_RE

__all__ = [
    "Catalog",
    "Repository",
    "ServedImage",
    "catalog_of",
    "repository_aliases",
]


def repository_aliases(ref: Reference) -> list[str]:
    """Repository names an image is served under: its path first, then aliases."""
    names = [ref.repository]
    if ref.registry == DOCKER_HUB and ref.repository.startswith("library/"):
        names.append(ref.repository.removeprefix("library/"))
    full = f"{ref.registry}/{ref.repository}"
    if NAME_RE.match(full):
        names.append(full)
    return names


@dataclass(frozen=True)
class ServedImage:
    """One tag (or untagged digest) being served, for the start-up listing."""

    repository: str
    tag: str | None
    digest: Digest
    media_type: str
    archive: str

    def name(self, host: str) -> str:
        suffix = f":{self.tag}" if self.tag else f"@{self.digest}"
        return f"{host}/{self.repository}{suffix}"


@dataclass
class Repository:
    name: str
    tags: dict[str, Manifest | Index] = field(default_factory=dict)
    manifests: dict[Digest, Manifest | Index] = field(default_factory=dict)
    blobs: dict[Digest, Descriptor] = field(default_factory=dict)
    #: subject digest -> the manifests naming it as their ``subject``, in archive order
    referrers: dict[Digest, list[Manifest | Index]] = field(default_factory=dict)

    def referrers_of(self, digest: Digest) -> list[Descriptor]:
        """The referrers list of ``digest`` (empty when nothing refers to it)."""
        return [referrer_descriptor(node) for node in self.referrers.get(digest, ())]

    def index_referrers(self) -> None:
        """Fill :attr:`referrers`, and the fallback tag of each subject that has none yet."""
        for node in self.manifests.values():
            if node.subject is not None:
                self.referrers.setdefault(node.subject.digest, []).append(node)
        for subject in self.referrers:
            tag = digest_tag(subject)
            if tag not in self.tags:
                index = parse_manifest(referrers_index(self.referrers_of(subject)), mt.OCI_INDEX)
                self.tags[tag] = index
                self.manifests[index.digest] = index


@dataclass
class Catalog:
    """Everything the server answers from, built once at start-up (read-only afterwards)."""

    repositories: dict[str, Repository] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)
    blob_sources: dict[Digest, ImageSource] = field(default_factory=dict)
    images: list[ServedImage] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def repository(self, name: str) -> Repository | None:
        canonical = name if name in self.repositories else self.aliases.get(name)
        return self.repositories.get(canonical) if canonical else None


def catalog_of(archives: Sequence[tuple[str, ImageSource]]) -> Catalog:
    """Index the records of ``archives`` (label, source); a later archive wins a repository:tag."""
    catalog = Catalog()
    where: dict[tuple[str, str], str] = {}
    refs: dict[str, list[Reference]] = {}
    for label, source in archives:
        unnamed = 0
        for record in source.records:
            ref = record.reference
            if ref is None:
                unnamed += 1
                continue
            repo = catalog.repositories.setdefault(ref.repository, Repository(ref.repository))
            refs.setdefault(ref.repository, []).append(ref)
            repo.manifests[record.root.digest] = record.root
            repo.manifests.update(record.children)
            for desc in record.blobs():
                repo.blobs.setdefault(desc.digest, desc)
                if desc.digest not in catalog.blob_sources and source.has_blob(desc.digest):
                    catalog.blob_sources[desc.digest] = source
            if ref.tag:
                old = repo.tags.get(ref.tag)
                if old is not None and old.digest != record.root.digest:
                    catalog.warnings.append(
                        f"{ref.repository}:{ref.tag} is in {where[(ref.repository, ref.tag)]} "
                        f"and in {label}: serving the one from {label}"
                    )
                repo.tags[ref.tag] = record.root
                where[(ref.repository, ref.tag)] = label
                catalog.images = [
                    i for i in catalog.images if (i.repository, i.tag) != (ref.repository, ref.tag)
                ]
            served = ServedImage(
                ref.repository, ref.tag, record.root.digest, record.root.media_type, label
            )
            if served not in catalog.images:
                catalog.images.append(served)
        if unnamed:
            noun = "image has" if unnamed == 1 else "images have"
            catalog.warnings.append(
                f"{label}: {unnamed} {noun} no repository name in the archive and cannot be "
                "served (a bare tag such as 'latest' names no repository)"
            )
    for repository in catalog.repositories.values():
        repository.index_referrers()
    for name in sorted(refs):
        for ref in refs[name]:
            for alias in repository_aliases(ref)[1:]:
                if alias not in catalog.repositories:
                    catalog.aliases.setdefault(alias, name)
    missing = {
        digest
        for repo in catalog.repositories.values()
        for digest, desc in repo.blobs.items()
        if digest not in catalog.blob_sources and not desc.urls
    }
    if missing:
        noun = "blob is" if len(missing) == 1 else "blobs are"
        catalog.warnings.append(
            f"{len(missing)} {noun} referenced but in none of the archives; "
            "requests for them get 404 BLOB_UNKNOWN"
        )
    return catalog
