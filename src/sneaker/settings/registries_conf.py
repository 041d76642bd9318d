"""``registries.conf``: the containers convention (podman, skopeo, buildah) for registry settings.

Files read, in order (later files override earlier entries with the same prefix):

* the main file: ``$CONTAINERS_REGISTRIES_CONF`` when set; else
  ``~/.config/containers/registries.conf`` when it exists; else
  ``/etc/containers/registries.conf``;
* the drop-ins, ``*.conf`` in alphanumerical order: from
  ``/etc/containers/registries.conf.d`` and then ``~/.config/containers/registries.conf.d``,
  but only the latter when the main file is the user's own.

What sneaker uses (version 2 format): ``[[registry]]`` tables with ``prefix``,
``location``, ``insecure``, ``blocked``, ``mirror-by-digest-only`` and
``[[registry.mirror]]`` tables with ``location``, ``insecure``,
``pull-from-mirror``. The longest matching prefix wins; ``*.example.com``
matches any subdomain. The deprecated version 1 lists (``[registries.insecure]``,
``[registries.block]``) are read too.

``credential-helpers`` (a list of helper names; ``containers-auth.json`` names the
credentials files) says where credentials are looked up, in order: the last file that
sets it wins; :mod:`sneaker.registry.credentials` uses it.

Ignored, with a note: ``unqualified-search-registries`` (sneaker completes short
names as docker does, with ``docker.io``), ``[aliases]``, ``short-name-mode``. Unknown keys
give a warning and are ignored; bad TOML is a :class:`ConfigError` naming the
file and the line.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from ..errors import ConfigError
from .endpoints import PULL_FROM, Endpoint, PullFrom, join_location, split_location

__all__ = [
    "ENV_REGISTRIES_CONF",
    "SYSTEM_DROPIN_DIR",
    "SYSTEM_REGISTRIES_CONF",
    "MirrorEntry",
    "RegistriesConf",
    "RegistryEntry",
    "default_registries_conf_files",
    "load_registries_conf",
    "parse_registries_conf",
]

ENV_REGISTRIES_CONF = "CONTAINERS_REGISTRIES_CONF"
SYSTEM_REGISTRIES_CONF = Path("/etc/containers/registries.conf")
SYSTEM_DROPIN_DIR = Path("/etc/containers/registries.conf.d")
_USER_FILE = Path(".config/containers/registries.conf")
_USER_DROPIN_DIR = Path(".config/containers/registries.conf.d")

_TOP_KNOWN = frozenset({"registry", "registries", "credential-helpers"})
# a helper is the program docker-credential-NAME: a name, never a path
_HELPER_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]*"
_TOP_IGNORED = {
    "unqualified-search-registries": "sneaker completes short names as docker does (docker.io)",
    "aliases": "short-name aliases are not used: sneaker completes short names as docker does",
    "short-name-mode": "short-name resolution is docker's (docker.io)",
    "additional-layer-store-auth-helper": "sneaker has no additional layer store",
}
_REGISTRY_KEYS = frozenset(
    {"prefix", "location", "insecure", "blocked", "mirror", "mirror-by-digest-only"}
)
_MIRROR_KEYS = frozenset({"location", "insecure", "pull-from-mirror"})
_V1_TABLES = frozenset({"search", "insecure", "block"})

# patterns of tomllib's error messages (re caches them compiled; an error is rare)
_TOML_POSITION = r"\s*\(at line (\d+), column (\d+)\)\s*$"
_TOML_AT_END = r"\s*\(at end of document\)\s*$"


@dataclass(frozen=True)
class MirrorEntry:
    """A ``[[registry.mirror]]``: ``host``/``path`` is its location."""

    host: str
    path: str
    insecure: bool = False
    pull_from: PullFrom = "all"
    where: str = ""


@dataclass(frozen=True)
class RegistryEntry:
    """A ``[[registry]]`` table, checked and normalised.

    ``prefix_host`` is ``host[:port]`` (``docker.io`` for the Hub) or a wildcard
    ``*.domain``; ``location_host`` is None when the location is the prefix
    itself (no rewrite). ``where`` is ``FILE, line N`` for messages.
    """

    prefix_host: str
    prefix_path: str = ""
    location_host: str | None = None
    location_path: str = ""
    insecure: bool = False
    blocked: bool = False
    mirrors: tuple[MirrorEntry, ...] = ()
    where: str = ""
    file: str = ""

    @property
    def wildcard(self) -> bool:
        return self.prefix_host.startswith("*.")

    @property
    def prefix(self) -> str:
        return join_location(self.prefix_host, self.prefix_path)

    def match(self, host: str, path: str) -> int | None:
        """How specific a match this entry is for ``host``/``path`` (None: no match)."""
        if self.wildcard:
            domain = self.prefix_host[1:]
            hostname = host if host.startswith("[") else host.rsplit(":", 1)[0]
            if hostname.endswith(domain) and len(hostname) > len(domain):
                return len(self.prefix_host) - 1
            return None
        if host != self.prefix_host:
            return None
        inside = path == self.prefix_path or path.startswith(self.prefix_path + "/")
        if self.prefix_path and not inside:
            return None
        return len(self.prefix)

    def origin(self, host: str, *, insecure: bool) -> Endpoint:
        """The endpoint the prefix-rooted namespace really lives at (``location``)."""
        said = self.where if self.insecure else ""
        if self.wildcard or self.location_host is None:
            return Endpoint(
                host, insecure=insecure or self.insecure, source=self.where, insecure_source=said
            )
        return Endpoint(
            self.location_host,
            insecure=insecure or self.insecure,
            path_from=self.prefix_path,
            path_to=self.location_path,
            source=self.where,
            insecure_source=said,
        )

    def mirror_endpoints(self) -> tuple[Endpoint, ...]:
        return tuple(
            Endpoint(
                m.host,
                insecure=m.insecure,
                mirror=True,
                path_from="" if self.wildcard else self.prefix_path,
                path_to=m.path,
                pull_from=m.pull_from,
                source=m.where,
                insecure_source=m.where if m.insecure else "",
            )
            for m in self.mirrors
        )


@dataclass(frozen=True)
class RegistriesConf:
    """The merged registries.conf files: entries by prefix, plus warnings and notes."""

    files: tuple[Path, ...] = ()
    entries: tuple[RegistryEntry, ...] = ()
    warnings: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    #: ``credential-helpers`` of the last file that sets it (None: no file does)
    credential_helpers: tuple[str, ...] | None = None

    def find(self, host: str, path: str = "") -> RegistryEntry | None:
        """The entry with the longest prefix matching ``host``/``path``."""
        best: tuple[int, RegistryEntry] | None = None
        for entry in self.entries:
            score = entry.match(host, path)
            if score is not None and (best is None or score > best[0]):
                best = (score, entry)
        return best[1] if best else None

    def mentions(self, host: str) -> bool:
        """Is there any entry for ``host``, at any path depth?"""
        for entry in self.entries:
            if entry.wildcard:
                if entry.match(host, "") is not None:
                    return True
            elif entry.prefix_host == host:
                return True
        return False


# -- discovery ------------------------------------------------------------------------


def default_registries_conf_files(
    env: Mapping[str, str] | None = None, home: Path | None = None
) -> list[Path]:
    """The registries.conf files that exist, in the order they are read."""
    environ = os.environ if env is None else env
    home_dir = home if home is not None else Path.home()
    user_file = home_dir / _USER_FILE
    user_dir = home_dir / _USER_DROPIN_DIR
    override = environ.get(ENV_REGISTRIES_CONF)
    if override:
        main, dirs = Path(override), [SYSTEM_DROPIN_DIR, user_dir]
    elif user_file.is_file():
        main, dirs = user_file, [user_dir]
    else:
        main, dirs = SYSTEM_REGISTRIES_CONF, [SYSTEM_DROPIN_DIR, user_dir]
    files = [main] if main.is_file() else []
    for directory in dirs:
        try:
            found = sorted(p for p in directory.glob("*.conf") if p.is_file())
        except OSError:
            continue
        files.extend(found)
    return files


# -- parsing --------------------------------------------------------------------------


# a table header line; compiled (and cached) by re on first use, when a file is parsed
_HEADER = r"^\s*\[\[?\s*([^\]]*?)\s*\]\]?\s*(?:#.*)?$"


class _Lines:
    """Best-effort line numbers for tables and keys (tomllib gives none for values)."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        self.registry_starts: list[int] = []
        self.mirror_starts: dict[int, list[int]] = {}
        self.table_starts: dict[str, int] = {}
        self.header_lines: set[int] = set()
        for number, raw in enumerate(self.lines, 1):
            found = re.match(_HEADER, raw)
            if not found:
                continue
            self.header_lines.add(number)
            name = re.sub(r"\s*\.\s*", ".", found.group(1)).replace('"', "")
            if raw.strip().startswith("[["):
                if name == "registry":
                    self.registry_starts.append(number)
                elif name == "registry.mirror" and self.registry_starts:
                    index = len(self.registry_starts) - 1
                    self.mirror_starts.setdefault(index, []).append(number)
            else:
                self.table_starts.setdefault(name, number)

    def registry_line(self, index: int) -> int | None:
        return self.registry_starts[index] if index < len(self.registry_starts) else None

    def mirror_line(self, registry: int, index: int) -> int | None:
        starts = self.mirror_starts.get(registry, [])
        return starts[index] if index < len(starts) else None

    def key_line(self, key: str, start: int | None) -> int | None:
        """The line of ``key = ...`` in the table whose header is on line ``start`` (0: top)."""
        if start is None:
            return None
        escaped = re.escape(key)
        pattern = re.compile(rf"^\s*(?:{escaped}|\"{escaped}\"|'{escaped}')\s*=")
        for number in range(start + 1, len(self.lines) + 1):
            if number in self.header_lines:
                break
            if pattern.match(self.lines[number - 1]):
                return number
        return start or None


def _where(path: Path | str, line: int | None) -> str:
    return f"{path}, line {line}" if line else str(path)


def load_toml(text: str, path: Path | str) -> dict[str, Any]:
    """Parse TOML; a syntax error becomes ConfigError naming the file and the line."""
    # imported here, not at the top: most machines have no registries.conf to parse
    toml: Any = importlib.import_module("tomllib" if sys.version_info >= (3, 11) else "tomli")
    try:
        return cast(dict[str, Any], toml.loads(text))
    except toml.TOMLDecodeError as exc:
        message = str(exc)
        position = re.search(_TOML_POSITION, message)
        if position:
            line, column = int(position.group(1)), int(position.group(2))
            reason = message[: position.start()]
            raise ConfigError(
                f"{path}, line {line}: invalid TOML: {reason} (column {column})"
            ) from None
        if re.search(_TOML_AT_END, message):
            reason = re.sub(_TOML_AT_END, "", message)
            line = max(1, len(text.splitlines()))
            raise ConfigError(
                f"{path}, line {line}: invalid TOML: {reason} (at the end of the file)"
            ) from None
        raise ConfigError(f"{path}: invalid TOML: {message}") from None


def _read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}, line {line}: not UTF-8 text") from None


def _bool(table: Mapping[str, Any], key: str, where: str) -> bool:
    value = table.get(key, False)
    if not isinstance(value, bool):
        raise ConfigError(f"{where}: {key} must be true or false, not {value!r}")
    return value


def _string(table: Mapping[str, Any], key: str, where: str) -> str | None:
    value = table.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{where}: {key} must be a string, not {value!r}")
    return value


@dataclass
class _FileResult:
    entries: list[RegistryEntry] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    version1: bool = False
    credential_helpers: tuple[str, ...] | None = None


def _parse_prefix(text: str, where: str) -> tuple[str, str] | None:
    """(host, path) of a prefix; a wildcard ``*.domain`` has an empty path; None: unsupported."""
    value = text.strip()
    if value.startswith("*."):
        host = value[2:]
        if "/" in host or "*" in host or not host:
            raise ConfigError(
                f"{where}: prefix {text!r}: a wildcard is allowed only as *.domain, with no path"
            )
        split_location(host, what="prefix", where=where)
        return "*." + host.lower(), ""
    path = value.partition("/")[2]
    if "@" in path or ":" in path:
        return None
    return split_location(value, what="prefix", where=where)


def _parse_mirror(
    table: Any,
    where: str,
    lines: _Lines,
    line: int | None,
    path: Path,
    by_digest: bool,
    result: _FileResult,
) -> MirrorEntry:
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: each [[registry.mirror]] must be a table")
    for key in table:
        if key not in _MIRROR_KEYS:
            result.warnings.append(
                f"{_where(path, lines.key_line(key, line))}: unknown key {key!r} in "
                f"[[registry.mirror]] (ignored)"
            )
    location = _string(table, "location", where)
    if not location:
        raise ConfigError(f"{where}: a [[registry.mirror]] needs a location")
    host, mirror_path = split_location(location, what="mirror location", where=where)
    pull_from_text = _string(table, "pull-from-mirror", where) or ""
    if pull_from_text and pull_from_text not in PULL_FROM:
        raise ConfigError(
            f"{where}: pull-from-mirror must be one of {', '.join(PULL_FROM)}, "
            f"not {pull_from_text!r}"
        )
    if pull_from_text and by_digest:
        raise ConfigError(
            f"{where}: pull-from-mirror cannot be set when the registry has "
            f"mirror-by-digest-only = true"
        )
    pull_from: PullFrom = "digest-only" if by_digest else "all"
    for choice in PULL_FROM:
        if pull_from_text == choice:
            pull_from = choice
    return MirrorEntry(host, mirror_path, _bool(table, "insecure", where), pull_from, where=where)


def _parse_v2_registry(
    index: int, table: Any, path: Path, lines: _Lines, result: _FileResult
) -> RegistryEntry | None:
    line = lines.registry_line(index)
    where = _where(path, line)
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: each [[registry]] must be a table")
    for key in table:
        if key not in _REGISTRY_KEYS:
            result.warnings.append(
                f"{_where(path, lines.key_line(key, line))}: unknown key {key!r} in "
                f"[[registry]] (ignored)"
            )
    prefix_text = _string(table, "prefix", where)
    location_text = _string(table, "location", where)
    if not prefix_text and not location_text:
        raise ConfigError(f"{where}: a [[registry]] needs a prefix or a location")
    prefix = _parse_prefix(prefix_text or location_text or "", where)
    if prefix is None:
        result.warnings.append(
            f"{where}: prefix {prefix_text or location_text!r} names a tag or digest; "
            f"sneaker does not support such entries (ignored)"
        )
        return None
    prefix_host, prefix_path = prefix
    location_host: str | None = None
    location_path = ""
    if location_text is not None:
        if prefix_host.startswith("*."):
            if location_text.strip():
                result.warnings.append(
                    f"{where}: the location of wildcard prefix {prefix_text!r} is ignored"
                )
        else:
            location_host, location_path = split_location(
                location_text, what="location", where=where
            )
            if (location_host, location_path) == (prefix_host, prefix_path):
                location_host, location_path = None, ""
    by_digest = _bool(table, "mirror-by-digest-only", where)
    raw_mirrors = table.get("mirror", [])
    if not isinstance(raw_mirrors, list):
        raise ConfigError(f"{where}: mirror must be an array of tables ([[registry.mirror]])")
    mirrors = tuple(
        _parse_mirror(
            item,
            _where(path, lines.mirror_line(index, i) or line),
            lines,
            lines.mirror_line(index, i),
            path,
            by_digest,
            result,
        )
        for i, item in enumerate(raw_mirrors)
    )
    return RegistryEntry(
        prefix_host=prefix_host,
        prefix_path=prefix_path,
        location_host=location_host,
        location_path=location_path,
        insecure=_bool(table, "insecure", where),
        blocked=_bool(table, "blocked", where),
        mirrors=mirrors,
        where=where,
        file=str(path),
    )


def _parse_v1(data: Any, path: Path, lines: _Lines, result: _FileResult) -> None:
    start = lines.table_starts.get("registries")
    if not isinstance(data, dict):
        raise ConfigError(f"{_where(path, start)}: registries must be a table")
    flags: dict[str, dict[str, Any]] = {}
    for name, table in data.items():
        table_line = lines.table_starts.get(f"registries.{name}", start)
        where = _where(path, table_line)
        if name not in _V1_TABLES:
            result.warnings.append(f"{where}: unknown table [registries.{name}] (ignored)")
            continue
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: [registries.{name}] must be a table")
        for key in table:
            if key != "registries":
                result.warnings.append(
                    f"{_where(path, lines.key_line(key, table_line))}: unknown key {key!r} "
                    f"in [registries.{name}] (ignored)"
                )
        hosts = table.get("registries", [])
        if not isinstance(hosts, list) or not all(isinstance(h, str) for h in hosts):
            raise ConfigError(f"{where}: registries must be an array of strings")
        if name == "search":
            if hosts:
                result.notes.append(
                    f"{where}: [registries.search] is ignored: "
                    f"{_TOP_IGNORED['unqualified-search-registries']}"
                )
            continue
        for host_text in hosts:
            parsed = _parse_prefix(host_text, where)
            if parsed is None:
                continue
            key = join_location(*parsed)
            entry = flags.setdefault(key, {"parsed": parsed, "where": where})
            entry["insecure" if name == "insecure" else "blocked"] = True
            if name == "block":
                entry["where"] = where  # a block is what messages name the line of
    for item in flags.values():
        host, prefix_path = item["parsed"]
        result.entries.append(
            RegistryEntry(
                prefix_host=host,
                prefix_path=prefix_path,
                insecure=bool(item.get("insecure")),
                blocked=bool(item.get("blocked")),
                where=str(item["where"]),
                file=str(path),
            )
        )


def _credential_helpers(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: credential-helpers must be an array of strings")
    for name in value:
        if not re.fullmatch(_HELPER_NAME, name):
            raise ConfigError(
                f"{where}: credential-helpers: {name!r} is not a helper name "
                f"(docker-credential-NAME, or containers-auth.json for the credentials files)"
            )
    return tuple(value)


def parse_registries_conf(
    text: str, path: Path | str
) -> tuple[list[RegistryEntry], list[str], list[str], bool]:
    """Parse one file: (entries, warnings, notes, is_version_1)."""
    result = _parse_file(text, Path(path))
    return result.entries, result.warnings, result.notes, result.version1


def _parse_file(text: str, file_path: Path) -> _FileResult:
    """One file's entries, warnings, notes, format version and credential helpers."""
    data = load_toml(text, file_path)
    lines = _Lines(text)
    result = _FileResult()
    for key in data:
        if key in _TOP_IGNORED:
            line = lines.key_line(key, 0) or lines.table_starts.get(key)
            value = data[key]
            if value not in ([], {}, "", None):
                result.notes.append(
                    f"{_where(file_path, line)}: {key} is ignored: {_TOP_IGNORED[key]}"
                )
        elif key not in _TOP_KNOWN:
            line = lines.key_line(key, 0) or lines.table_starts.get(key)
            result.warnings.append(f"{_where(file_path, line)}: unknown key {key!r} (ignored)")
    if "credential-helpers" in data:
        line = lines.key_line("credential-helpers", 0)
        result.credential_helpers = _credential_helpers(
            data["credential-helpers"], _where(file_path, line)
        )
    has_v1 = "registries" in data
    has_v2 = "registry" in data
    if has_v1 and has_v2:
        raise ConfigError(
            f"{file_path}: mixes the version 1 format ([registries.*]) and the version 2 "
            f"format ([[registry]])",
            hint="convert the [registries.*] lists to [[registry]] tables",
        )
    if has_v1:
        result.version1 = True
        _parse_v1(data["registries"], file_path, lines, result)
    if has_v2:
        tables = data["registry"]
        if not isinstance(tables, list):
            raise ConfigError(f"{file_path}: registry must be an array of tables ([[registry]])")
        seen: dict[str, str] = {}
        for index, table in enumerate(tables):
            entry = _parse_v2_registry(index, table, file_path, lines, result)
            if entry is None:
                continue
            if entry.prefix in seen:
                raise ConfigError(
                    f"{entry.where}: prefix {entry.prefix!r} is already defined at "
                    f"{seen[entry.prefix]}"
                )
            seen[entry.prefix] = entry.where
            result.entries.append(entry)
    return result


def load_registries_conf(files: Sequence[Path]) -> RegistriesConf:
    """Read ``files`` in order; an entry replaces an earlier one with the same prefix.

    The first file may use the version 1 format; drop-ins must use version 2.
    """
    merged: dict[str, RegistryEntry] = {}
    warnings: list[str] = []
    notes: list[str] = []
    helpers: tuple[str, ...] | None = None
    for position, path in enumerate(files):
        result = _parse_file(_read_text(path), path)
        if result.version1 and position > 0 and path.parent.name.endswith(".conf.d"):
            raise ConfigError(
                f"{path}: a registries.conf.d drop-in must use the version 2 format "
                f"([[registry]] tables)"
            )
        for entry in result.entries:
            merged[entry.prefix] = entry
        warnings.extend(result.warnings)
        notes.extend(result.notes)
        if result.credential_helpers is not None:
            helpers = result.credential_helpers
    return RegistriesConf(
        tuple(files), tuple(merged.values()), tuple(warnings), tuple(notes), helpers
    )
