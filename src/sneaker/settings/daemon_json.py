"""docker's ``daemon.json``: ``registry-mirrors`` and ``insecure-registries`` as dockerd reads them.

Which file: ``$SNEAKER_DAEMON_JSON`` when set (an empty value reads none); else,
for a user who is not root, the rootless daemon's
``$XDG_CONFIG_HOME/docker/daemon.json`` (``~/.config/docker/daemon.json``) when it
exists; else ``/etc/docker/daemon.json``. Only one file is read, as dockerd reads
one.

* ``registry-mirrors``: URLs (``https://mirror.example``, ``http://10.0.0.5:5000``);
  as in docker they apply to Docker Hub only. An ``http://`` mirror is spoken to
  over plain HTTP.
* ``insecure-registries``: ``host[:port]`` entries and CIDR networks
  (``10.0.0.0/8``): TLS without verification, or plain HTTP, is allowed for them.
  A host name is checked against the networks by resolving it, as docker does.

The many other daemon.json keys concern the daemon, not sneaker, and are
skipped silently; a key docker does not know either gives a warning. Bad JSON is
a :class:`ConfigError` naming the file and the line.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..errors import ConfigError
from .endpoints import normalize_host

__all__ = [
    "ENV_DAEMON_JSON",
    "SYSTEM_DAEMON_JSON",
    "DaemonJson",
    "DaemonMirror",
    "default_daemon_json_file",
    "load_daemon_json",
    "parse_daemon_json",
]

ENV_DAEMON_JSON = "SNEAKER_DAEMON_JSON"
SYSTEM_DAEMON_JSON = Path("/etc/docker/daemon.json")

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: keys dockerd accepts in daemon.json (Linux and Windows), which sneaker has no use for
_DOCKER_KEYS = frozenset(
    """
    allow-nondistributable-artifacts api-cors-header authorization-plugins bip bip6 bridge
    builder cdi-spec-dirs cgroup-parent cluster-advertise cluster-store cluster-store-opts
    containerd containerd-namespace containerd-plugin-namespace containerd-plugins-namespace
    cpu-rt-period cpu-rt-runtime cri-containerd data-root debug default-address-pools
    default-cgroupns-mode default-gateway default-gateway-v6 default-ipc-mode
    default-network-opts default-runtime default-shm-size default-ulimits
    disable-legacy-registry dns dns-opts dns-search exec-opts exec-root experimental
    features fixed-cidr fixed-cidr-v6 firewall-backend graph group host-gateway-ip
    host-gateway-ips hosts http-proxy https-proxy icc init init-path ip ip-forward
    ip-forward-no-drop ip-masq ip6tables iptables ipv6 labels live-restore log-driver
    log-format log-level log-opts max-concurrent-downloads max-concurrent-uploads
    max-download-attempts metrics-addr min-api-version mtu network-control-plane-mtu
    no-new-privileges no-proxy node-generic-resources oom-score-adjust pidfile proxies
    raw-logs registry-mirrors insecure-registries runtimes seccomp-profile selinux-enabled
    shutdown-timeout storage-driver storage-opts swarm-default-advertise-addr tls tlscacert
    tlscert tlskey tlsverify userland-proxy userland-proxy-path userns-remap validate
    """.split()  # noqa: SIM905 - a word list reads better than 100 quoted strings
)


@dataclass(frozen=True)
class DaemonMirror:
    """A ``registry-mirrors`` URL: its host, and whether it is plain HTTP."""

    host: str
    plain_http: bool
    url: str
    where: str


@dataclass(frozen=True)
class DaemonJson:
    """What sneaker takes from daemon.json."""

    path: Path | None = None
    mirrors: tuple[DaemonMirror, ...] = ()
    insecure_hosts: frozenset[str] = frozenset()
    insecure_networks: tuple[IPNetwork, ...] = ()
    warnings: tuple[str, ...] = ()
    #: ``FILE, line N`` of ``insecure-registries``, for the warning that verification is off
    insecure_where: str = ""
    _resolved: dict[str, bool] = field(default_factory=dict, init=False, compare=False, repr=False)

    def is_insecure(self, host: str) -> bool:
        """Is ``host[:port]`` listed in insecure-registries (by name or by network)?"""
        name = normalize_host(host)
        if name in self.insecure_hosts:
            return True
        if not self.insecure_networks:
            return False
        if name in self._resolved:
            return self._resolved[name]
        answer = any(
            address in network
            for address in _addresses(_hostname(name))
            for network in self.insecure_networks
            if address.version == network.version
        )
        self._resolved[name] = answer
        return answer


def _hostname(host: str) -> str:
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _addresses(hostname: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        return [ipaddress.ip_address(hostname)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(hostname, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return []
    found: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = []
    for info in infos:
        try:
            found.append(ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]))
        except ValueError:
            continue
    return found


def default_daemon_json_file(
    env: Mapping[str, str] | None = None, home: Path | None = None, euid: int | None = None
) -> Path | None:
    """The daemon.json to read, or None when there is none."""
    environ = os.environ if env is None else env
    if ENV_DAEMON_JSON in environ:
        chosen = environ[ENV_DAEMON_JSON]
        return Path(chosen) if chosen else None
    uid = euid if euid is not None else (os.geteuid() if hasattr(os, "geteuid") else 0)
    if uid != 0:
        home_dir = home if home is not None else Path.home()
        config_home = environ.get("XDG_CONFIG_HOME") or str(home_dir / ".config")
        rootless = Path(config_home) / "docker" / "daemon.json"
        if rootless.is_file():
            return rootless
    return SYSTEM_DAEMON_JSON if SYSTEM_DAEMON_JSON.is_file() else None


def _key_line(text: str, key: str) -> int | None:
    match = re.search(rf'"{re.escape(key)}"\s*:', text)
    return text.count("\n", 0, match.start()) + 1 if match else None


def _where(path: Path | str, line: int | None) -> str:
    return f"{path}, line {line}" if line else str(path)


def _string_list(data: Mapping[str, Any], key: str, where: str) -> list[str]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: {key} must be an array of strings")
    return [v.strip() for v in value if v.strip()]


def _mirror(url: str, where: str) -> DaemonMirror:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(
            f"{where}: registry mirror {url!r} must be an http:// or https:// URL",
            hint='write it as "https://mirror.example.com"',
        )
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ConfigError(
            f"{where}: registry mirror {url!r} must not have a path, query or fragment"
        )
    if "@" in parts.netloc:
        raise ConfigError(f"{where}: registry mirror URLs must not carry credentials")
    return DaemonMirror(normalize_host(parts.netloc), parts.scheme == "http", url, where)


def parse_daemon_json(text: str, path: Path | str) -> DaemonJson:
    """Parse one daemon.json; ConfigError names the file and the line."""
    try:
        data = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{path}, line {exc.lineno}: invalid JSON: {exc.msg} (column {exc.colno})"
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a JSON object")
    warnings: list[str] = []
    for key in data:
        if key not in _DOCKER_KEYS:
            warnings.append(f"{_where(path, _key_line(text, key))}: unknown key {key!r} (ignored)")
    mirrors_where = _where(path, _key_line(text, "registry-mirrors"))
    mirrors = tuple(
        _mirror(url, mirrors_where) for url in _string_list(data, "registry-mirrors", mirrors_where)
    )
    insecure_where = _where(path, _key_line(text, "insecure-registries"))
    hosts: set[str] = set()
    networks: list[IPNetwork] = []
    for entry in _string_list(data, "insecure-registries", insecure_where):
        value = entry
        lowered = value.lower()
        for scheme in ("http://", "https://"):
            if lowered.startswith(scheme):
                warnings.append(
                    f"{insecure_where}: insecure registry {entry!r} should not contain "
                    f"{scheme!r}; it was removed"
                )
                value = value[len(scheme) :]
                break
        if "://" in value:
            raise ConfigError(
                f"{insecure_where}: insecure registry {entry!r} must not contain '://'"
            )
        value = value.rstrip("/")
        if "/" in value:
            try:
                networks.append(ipaddress.ip_network(value, strict=False))
            except ValueError:
                raise ConfigError(
                    f"{insecure_where}: insecure registry {entry!r} is neither host[:port] "
                    f"nor a CIDR network"
                ) from None
            continue
        hosts.add(normalize_host(value))
    return DaemonJson(
        path=Path(path),
        mirrors=mirrors,
        insecure_hosts=frozenset(hosts),
        insecure_networks=tuple(networks),
        warnings=tuple(warnings),
        insecure_where=insecure_where,
    )


def load_daemon_json(files: Sequence[Path]) -> DaemonJson:
    """Read the first of ``files`` that exists (dockerd reads one file); none: empty."""
    for path in files:
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            line = raw[: exc.start].count(b"\n") + 1
            raise ConfigError(f"{path}, line {line}: not UTF-8 text") from None
        return parse_daemon_json(text, path)
    return DaemonJson()
