"""Is a host this machine? The one loopback predicate, for every rule that depends on it.

Loopback registries may be spoken to over plain http (transport), may hand out a
token realm over http (auth), are never proxied (proxy) and let an ``insecure``
mirror through without ``--plain-http`` (mirrors). Pure logic, no I/O.
"""

from __future__ import annotations

import ipaddress

__all__ = ["is_loopback_host"]


def is_loopback_host(host: str) -> bool:
    """``localhost`` (and ``*.localhost``), 127.0.0.0/8 or ::1, with or without a port or
    brackets."""
    name = host.strip().lower()
    if name.startswith("["):
        name = name[1:].split("]", 1)[0]
    elif name.count(":") == 1:
        name = name.split(":", 1)[0]
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False
