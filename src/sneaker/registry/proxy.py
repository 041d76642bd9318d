"""Which proxy a URL goes through: ``HTTPS_PROXY``/``HTTP_PROXY`` and ``NO_PROXY``.

As Go's net/http (and so docker) does: loopback hosts are never proxied;
``NO_PROXY`` entries are ``*``, host names (matching sub-domains too, with or
without a leading dot), ``host:port``, IP addresses and CIDR ranges.
Pure logic, no I/O.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from urllib.parse import urlsplit

from .loopback import is_loopback_host

__all__ = ["bypasses_proxy", "proxy_for"]


def _env(env: Mapping[str, str], name: str) -> str:
    return env.get(name.upper()) or env.get(name.lower()) or ""


def proxy_for(url: str, env: Mapping[str, str]) -> str | None:
    """The proxy URL to use for ``url``, or None to connect directly."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    proxy = _env(env, "HTTPS_PROXY") if scheme == "https" else _env(env, "HTTP_PROXY")
    if not proxy:
        return None
    host = (parts.hostname or "").lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None:
        port = 443 if scheme == "https" else 80
    if bypasses_proxy(host, port, _env(env, "NO_PROXY")):
        return None
    if "://" not in proxy:
        proxy = "http://" + proxy
    return proxy


def bypasses_proxy(host: str, port: int, no_proxy: str) -> bool:
    """Does ``NO_PROXY`` (or loopback-ness) exempt ``host:port`` from the proxy?"""
    host = host.strip("[]").lower()
    if is_loopback_host(host):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    for raw in no_proxy.split(","):
        entry = raw.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return True
        if "/" in entry and address is not None:
            try:
                if address in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                pass
            continue
        entry_host, entry_port = entry, None
        if entry.startswith("["):
            entry_host, _, rest = entry[1:].partition("]")
            if rest.startswith(":") and rest[1:].isdigit():
                entry_port = int(rest[1:])
        elif entry.count(":") == 1:
            name, _, maybe_port = entry.partition(":")
            if maybe_port.isdigit():
                entry_host, entry_port = name, int(maybe_port)
        if entry_port is not None and entry_port != port:
            continue
        if address is not None:
            try:
                if ipaddress.ip_address(entry_host) == address:
                    return True
            except ValueError:
                pass
            continue
        suffix = entry_host.lstrip("*").lstrip(".")
        if host == suffix or host.endswith("." + suffix):
            return True
    return False
