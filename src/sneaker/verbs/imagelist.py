"""Lists of images to carry: images files, docker-compose files and Kubernetes YAML.

- :func:`read_images_file`: one reference per line; ``#`` starts a comment
  (a whole line or the end of one); blank lines are skipped; ``-`` reads
  standard input. A reference may be followed by options for that image alone:
  ``--referrers`` (carry its signatures, attestations and SBOMs, as the
  command's ``--referrers`` does for every image), e.g.
  ``ghcr.io/org/app:1.0 --referrers``.
- :func:`images_from_yaml`: the ``image:`` values of a YAML file, any number of
  documents. Rather than knowing every kind (Deployment, CronJob, Pod,
  ``initContainers``, compose ``services``, ``List`` items, ...), it walks every
  mapping and takes each ``image`` key whose value is a non-empty string; a
  mapping under ``image`` (a Helm-style ``image: {repository: ...}``, an image
  volume source) is not a reference and is passed over. Compose's ``${VAR}``,
  ``${VAR:-default}``, ``${VAR-default}``, ``${VAR:?message}``, ``$VAR`` and
  ``$$`` are expanded from the environment, as ``docker compose`` does.
- Hauler manifests (``content.hauler.cattle.io``) in such a file: their ``Images``
  and their ``Charts`` stored in OCI registries (:mod:`sneaker.verbs.hauler`); an
  image's ``platform`` there is kept with it (:func:`platform_notes` says when the
  run's ``--platform`` does not cover it).
- :func:`collect_images`: positional references plus those files, each image
  once (by its normalised name), in order; :func:`collect_entries` the same with
  each image's options (:class:`ImageEntry`).

Every reference is checked with :func:`sneaker.image.reference.parse_reference`; a
bad one is an error naming the file and line. Results keep the spelling the
file used. Reading YAML uses PyYAML's safe loader only (no object construction).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..errors import ConfigError, InvalidReference, UsageError
from ..image.platform import parse_platform
from ..image.reference import parse_reference
from ..image.selection import PlatformRequest
from .hauler import hauler_images, is_hauler

__all__ = [
    "LINE_OPTIONS",
    "ImageEntry",
    "collect_entries",
    "collect_images",
    "images_from_yaml",
    "platform_notes",
    "read_image_entries",
    "read_images_file",
]

#: images files and YAML files larger than this are refused (they are lists, not data)
MAX_LIST_BYTES = 16 * 1024 * 1024

_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
    r"|(?P<named>[A-Za-z_][A-Za-z0-9_]*))"
)


def _read_text(path: Path | str, what: str) -> tuple[str, str]:
    """The text of ``path`` (``-`` is standard input) and the name to use in messages."""
    if str(path) == "-":
        return sys.stdin.read(MAX_LIST_BYTES + 1), "<stdin>"
    name = str(path)
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_LIST_BYTES + 1)
    except FileNotFoundError:
        raise UsageError(f"{what} {name} does not exist") from None
    except IsADirectoryError:
        raise UsageError(f"{what} {name} is a directory, not a file") from None
    except OSError as exc:
        raise UsageError(f"cannot read {what} {name}: {exc.strerror or exc}") from None
    if len(data) > MAX_LIST_BYTES:
        raise ConfigError(f"{what} {name} is larger than {MAX_LIST_BYTES // (1024 * 1024)} MiB")
    try:
        return data.decode("utf-8-sig"), name
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{name}: not UTF-8 text (byte {exc.start})") from None


def _checked(text: str, where: str) -> str:
    try:
        parse_reference(text)
    except InvalidReference as exc:
        raise InvalidReference(f"{where}: {exc.message}", hint=exc.hint) from None
    return text


#: what may follow a reference on a line of an images file
LINE_OPTIONS = ("--referrers",)


@dataclass(frozen=True)
class ImageEntry:
    """One image to carry, as a list names it, and its options: ``referrers`` (an images
    file's ``--referrers``) carries its referrers too; ``platform`` is the one a Hauler
    manifest names for it (``where`` says where)."""

    reference: str
    referrers: bool = False
    platform: str | None = None
    where: str = field(default="", compare=False)

    @property
    def key(self) -> str:
        """The normalised name (``docker.io/library/ubuntu:latest`` for ``ubuntu``)."""
        return str(parse_reference(self.reference))


def _dedup_entries(entries: Iterable[ImageEntry]) -> list[ImageEntry]:
    """Each image once, where it first appears, with the options of all its mentions."""
    merged: dict[str, ImageEntry] = {}
    for entry in entries:
        earlier = merged.get(entry.key)
        if earlier is None:
            merged[entry.key] = entry
        elif entry.referrers and not earlier.referrers:
            merged[entry.key] = replace(earlier, referrers=True)
    return list(merged.values())


def _dedup(references: Iterable[str]) -> list[str]:
    return [e.reference for e in _dedup_entries(ImageEntry(r) for r in references)]


def _line_entry(entry: str, where: str) -> ImageEntry:
    reference, *options = entry.split()
    for option in options:
        if option not in LINE_OPTIONS:
            raise UsageError(
                f"{where}: unknown option {option!r} after the image",
                hint=f"a line is a reference, then any of: {', '.join(LINE_OPTIONS)}",
            )
    return ImageEntry(_checked(reference, where), referrers="--referrers" in options)


def read_image_entries(path: Path | str) -> list[ImageEntry]:
    """The images of an images file with their options, each once, in file order."""
    text, name = _read_text(path, "images file")
    found: list[ImageEntry] = []
    for number, line in enumerate(text.splitlines(), start=1):
        entry = line.split("#", 1)[0].strip()
        if entry:
            found.append(_line_entry(entry, f"{name} line {number}"))
    return _dedup_entries(found)


def read_images_file(path: Path | str) -> list[str]:
    """The references in an images file, each once, in file order."""
    return [entry.reference for entry in read_image_entries(path)]


# -- YAML ---------------------------------------------------------------------------------


def expand_variables(value: str, environ: Mapping[str, str], where: str) -> str:
    """Compose-style interpolation of ``value``; an unset variable without default is an error."""

    def substitute(match: re.Match[str]) -> str:
        if match.group("escaped"):
            return "$"
        name = match.group("braced") or match.group("named")
        op = match.group("op")
        arg = match.group("arg") or ""
        current = environ.get(name)
        if op is None:
            if current is None:
                raise ConfigError(
                    f"{where}: variable {name} is not set",
                    hint=f"set it in the environment (export {name}=...) or give a default "
                    f"with ${{{name}:-default}}",
                )
            return current
        unset = current is None or (op.startswith(":") and current == "")
        if op.endswith("-"):
            return arg if unset else str(current)
        if unset:
            raise ConfigError(f"{where}: variable {name}: {arg or 'is not set'}")
        return str(current)

    if "$" not in value:
        return value
    return _VARIABLE.sub(substitute, value)


def _image_nodes(root: Any) -> Iterator[Any]:
    """Every scalar node that is the value of an ``image`` key, depth first, each node once."""
    import yaml

    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            children = []
            for key, value in node.value:
                if (
                    isinstance(key, yaml.ScalarNode)
                    and key.value == "image"
                    and isinstance(value, yaml.ScalarNode)
                    and value.tag == "tag:yaml.org,2002:str"
                ):
                    yield value
                children.append(value)
            stack.extend(reversed(children))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(reversed(node.value))


def images_from_yaml(path: Path | str, *, environ: Mapping[str, str] | None = None) -> list[str]:
    """The ``image:`` references of a compose file or Kubernetes YAML (and the images of a
    Hauler manifest), each once, in order."""
    return [entry.reference for entry in yaml_entries(path, environ=environ)]


def yaml_entries(path: Path | str, *, environ: Mapping[str, str] | None = None) -> list[ImageEntry]:
    """:func:`images_from_yaml`, each with the platform a Hauler manifest names for it."""
    import yaml

    text, name = _read_text(path, "YAML file")
    env = os.environ if environ is None else environ
    found: list[ImageEntry] = []
    try:
        documents = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{name} line {mark.line + 1}" if mark is not None else name
        problem = exc.problem or exc.context or "invalid YAML"
        raise ConfigError(f"{where}: invalid YAML: {problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{name}: invalid YAML: {exc}") from None
    for document in documents:
        if document is None:
            continue
        if is_hauler(document):
            for item in hauler_images(document, name):
                where = f"{name} line {item.line}"
                reference = _checked(item.reference, where)
                found.append(ImageEntry(reference, platform=item.platform, where=where))
            continue
        for node in _image_nodes(document):
            raw = str(node.value).strip()
            if not raw:
                continue
            where = f"{name} line {node.start_mark.line + 1}"
            found.append(ImageEntry(_checked(expand_variables(raw, env, where), where)))
    return _dedup_entries(found)


def platform_notes(entries: Sequence[ImageEntry], request: PlatformRequest) -> list[str]:
    """A warning for each image whose list names a platform that ``request`` (the run's
    ``--platform``, the same for every image) does not cover."""
    notes = []
    for entry in entries:
        if entry.platform is None or request.all:
            continue
        wanted = parse_platform(entry.platform)
        if not any(want.matches(wanted) for want in request.wanted()):
            notes.append(
                f"{entry.where}: {entry.reference} is listed for {entry.platform}, and this "
                f"run pulls {request} for every image (choose with --platform)"
            )
    return notes


def collect_entries(
    references: Sequence[str] = (),
    images_files: Sequence[Path | str] = (),
    yaml_files: Sequence[Path | str] = (),
) -> list[ImageEntry]:
    """Positional references, then those of each images file, then each YAML file; each
    image once, with its options."""
    merged = [ImageEntry(r) for r in references]
    for path in images_files:
        merged.extend(read_image_entries(path))
    for path in yaml_files:
        merged.extend(yaml_entries(path))
    return _dedup_entries(merged)


def collect_images(
    references: Sequence[str] = (),
    images_files: Sequence[Path | str] = (),
    yaml_files: Sequence[Path | str] = (),
) -> list[str]:
    """Positional references, then those of each images file, then each YAML file; each once."""
    return [e.reference for e in collect_entries(references, images_files, yaml_files)]
