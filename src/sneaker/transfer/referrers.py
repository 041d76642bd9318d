"""What refers to an image: OCI 1.1 referrers and cosign's tag attachments, found and bounded.

:class:`ReferrerFinder` is given a reader, an image's reference (its registry and
repository) and the digests of its manifests (the image's own, each platform
child's: :func:`sneaker.image.artifacts.referrer_subjects`), and returns the
manifests that refer to them, each resolved as an image is (an index with its
children). For each subject digest it asks:

1. the registry's referrers API (``RegistryReader.referrers``). A registry that
   has none (distribution 2.8 answers ``404 page not found``) is remembered, per
   registry and repository, and not asked again in the run;
2. without the API, the fallback tag ``sha256-<hex>``: an OCI index of the
   referrers that clients keep for such registries (a tag holding anything else
   means none, as the distribution spec says);
3. either way, cosign's tags ``sha256-<hex>.sig``, ``.att`` and ``.sbom``.

The repository's tags are listed once, so only the tags it has are fetched; a
registry that refuses to list them is asked for each tag instead (a 404 is "none").

Every referrer found is a subject in turn (a signature of an SBOM), down to
:attr:`ReferrerPolicy.depth` levels; at most :attr:`ReferrerPolicy.limit`
referrers are taken for one image; :attr:`ReferrerPolicy.types` keeps only those
types (:func:`sneaker.image.artifacts.filter_type`: ``artifactType``, cosign's
type for its tag attachments). What a bound left out is said in a warning. Each
digest is taken once in a run, whichever image led to it. Thread-safe: images
may be searched at once.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import NotFound, SneakerError
from ..image import mediatypes as mt
from ..image.artifacts import (
    COSIGN_SUFFIXES,
    cosign_tag,
    digest_tag,
    filter_type,
    referrer_subjects,
)
from ..image.digest import Digest
from ..image.model import Descriptor, Index, parse_manifest
from ..image.reference import Reference
from ..image.selection import PlatformRequest
from ..util.progress import count
from .remote import Resolved, resolve

if TYPE_CHECKING:
    from ..registry.reader import RegistryReader

__all__ = [
    "DEFAULT_DEPTH",
    "DEFAULT_LIMIT",
    "FoundReferrer",
    "ReferrerFinder",
    "ReferrerPolicy",
    "ReferrerSearch",
]

#: referrers of referrers are followed this many levels down (a signature of an SBOM is 2)
DEFAULT_DEPTH = 4
#: at most this many referrers are taken for one image
DEFAULT_LIMIT = 256
_ALL = PlatformRequest(all=True)


@dataclass(frozen=True)
class ReferrerPolicy:
    """How far to look: ``depth`` levels, ``limit`` referrers per image, only ``types``
    (all when empty)."""

    depth: int = DEFAULT_DEPTH
    limit: int = DEFAULT_LIMIT
    types: frozenset[str] = frozenset()

    def keeps(self, kind: str | None) -> bool:
        return not self.types or kind in self.types


@dataclass(frozen=True)
class FoundReferrer:
    """One manifest that refers to an image (or to another referrer).

    ``ref`` names it in the image's repository: by its cosign tag, else by digest.
    ``kind`` is ``referrer`` (an OCI 1.1 ``subject``) or cosign's suffix; ``via`` says
    how it was found: ``api``, ``tag`` (the fallback tag's index) or ``cosign``.
    """

    ref: Reference
    resolved: Resolved
    subject: Digest
    kind: str
    via: str
    depth: int

    @property
    def digest(self) -> Digest:
        return self.resolved.record.root.digest


@dataclass
class ReferrerSearch:
    """What one search found, in the order found, and what its bounds left out."""

    found: list[FoundReferrer] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Candidate:
    """A referrer listed (``desc``: by the API or a fallback index) or tagged (``tag``)."""

    subject: Digest
    via: str
    desc: Descriptor | None = None
    tag: str | None = None
    suffix: str = ""


class ReferrerFinder:
    """Finds referrers under one :class:`ReferrerPolicy` for a whole run (see the module doc)."""

    def __init__(self, policy: ReferrerPolicy | None = None) -> None:
        self.policy = policy or ReferrerPolicy()
        self._lock = threading.Lock()
        self._taken: set[Digest] = set()
        self._no_api: set[tuple[str, str]] = set()
        self._tags: dict[tuple[str, str], frozenset[str] | None] = {}

    # -- what the registry lists ---------------------------------------------------------

    def _tag_list(self, reader: RegistryReader, repository: str) -> frozenset[str] | None:
        """The repository's tags (listed once), or None when the registry will not list them."""
        key = (reader.registry, repository)
        with self._lock:
            if key in self._tags:
                return self._tags[key]
        try:
            tags: frozenset[str] | None = frozenset(reader.list_tags(repository))
        except NotFound:
            tags = frozenset()  # only untagged manifests (distribution: NAME_UNKNOWN)
        except SneakerError:
            tags = None
        with self._lock:
            self._tags[key] = tags
        return tags

    def _api(
        self, reader: RegistryReader, repository: str, subject: Digest
    ) -> list[Descriptor] | None:
        """The referrers API's list (filtered by type), or None when the registry has none."""
        key = (reader.registry, repository)
        with self._lock:
            if key in self._no_api:
                return None
        types = self.policy.types
        ask = next(iter(types)) if len(types) == 1 else None
        answer = reader.referrers(repository, subject, ask)
        if answer is None:
            with self._lock:
                self._no_api.add(key)
            return None
        return list(answer.manifests)

    def _fallback(self, reader: RegistryReader, repository: str, tag: str) -> list[Descriptor]:
        """The entries of the index under the fallback tag (none when it holds no index)."""
        try:
            raw, media_type = reader.get_manifest(repository, tag, (mt.OCI_INDEX,))
            node = parse_manifest(raw, media_type, where=f"{reader.registry}/{repository}:{tag}")
        except NotFound:
            return []
        except SneakerError:
            return []  # not an index of referrers: the spec says to assume there are none
        return list(node.manifests) if isinstance(node, Index) else []

    def _candidates(
        self, reader: RegistryReader, repository: str, subject: Digest
    ) -> list[_Candidate]:
        tags = self._tag_list(reader, repository)
        found: list[_Candidate] = []
        listed = self._api(reader, repository, subject)
        via = "api"
        if listed is None:
            via = "tag"
            fallback = digest_tag(subject)
            listed = (
                self._fallback(reader, repository, fallback)
                if tags is None or fallback in tags
                else []
            )
        found += [_Candidate(subject, via, desc=d) for d in listed]
        for suffix in COSIGN_SUFFIXES:
            tag = cosign_tag(subject, suffix)
            if tags is None or tag in tags:
                found.append(_Candidate(subject, "cosign", tag=tag, suffix=suffix))
        return found

    # -- taking them -------------------------------------------------------------------------

    def _new(self, desc: Descriptor) -> bool:
        """A listed referrer not taken yet and of a type the policy keeps (or of none said)."""
        with self._lock:
            if desc.digest in self._taken:
                return False
        return not desc.artifact_type or self.policy.keeps(desc.artifact_type)

    def _claim(self, digest: Digest) -> bool:
        """True the first time ``digest`` is taken in this run."""
        with self._lock:
            if digest in self._taken:
                return False
            self._taken.add(digest)
            return True

    def _take(
        self, reader: RegistryReader, base: Reference, candidate: _Candidate, depth: int
    ) -> FoundReferrer | None:
        """Resolve a candidate; None when it is filtered out, taken already, or gone."""
        desc = candidate.desc
        if desc is not None and (not self._new(desc) or not self._claim(desc.digest)):
            return None
        ref = Reference(
            base.registry, base.repository, candidate.tag, desc.digest if desc else None
        )
        try:
            resolved = resolve(reader, ref, _ALL)
        except NotFound:
            return None  # listed by a fallback index, deleted since (or a tag that vanished)
        root = resolved.record.root
        if candidate.tag is not None and not self._claim(root.digest):
            return None
        if not self.policy.keeps(filter_type(root, candidate.suffix)):
            return None
        kind = candidate.suffix or "referrer"
        return FoundReferrer(ref, resolved, candidate.subject, kind, candidate.via, depth)

    def find(
        self, reader: RegistryReader, image: Reference, subjects: Iterable[Digest]
    ) -> ReferrerSearch:
        """The referrers of ``subjects`` (an image's digests) in ``image``'s repository."""
        search = ReferrerSearch()
        policy = self.policy
        level = list(dict.fromkeys(subjects))
        for digest in level:  # the image itself is never taken as a referrer of another
            self._claim(digest)
        repository = image.repository
        for depth in range(1, policy.depth + 1):
            after: list[Digest] = []
            for subject in level:
                for candidate in self._candidates(reader, repository, subject):
                    if len(search.found) >= policy.limit:
                        search.warnings.append(
                            f"{image.familiar}: stopped after {count(policy.limit, 'referrer')} "
                            "(--referrers-max); more are listed"
                        )
                        return search
                    taken = self._take(reader, image, candidate, depth)
                    if taken is not None:
                        search.found.append(taken)
                        after.extend(referrer_subjects(taken.resolved.record))
            level = after
            if not level:
                return search
        deeper = sum(
            1
            for subject in level
            for candidate in self._candidates(reader, repository, subject)
            if candidate.desc is None or self._new(candidate.desc)
        )
        if deeper:
            search.warnings.append(
                f"{image.familiar}: {count(deeper, 'referrer')} more than "
                f"{count(policy.depth, 'level')} below the image left out (--referrers-depth)"
            )
        return search
