"""The one loopback predicate (registry/loopback.py): names, addresses, ports, brackets."""

from __future__ import annotations

import pytest

from sneaker.registry.loopback import is_loopback_host


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("localhost:5000", True),
        ("127.0.0.1:5000", True),
        ("127.1.2.3", True),
        ("[::1]:5000", True),
        ("::1", True),
        ("LOCALHOST:5000", True),
        ("registry.localhost", True),
        ("[fe80::1]:5000", False),
        ("registry.example:5000", False),
        ("10.0.0.1", False),
    ],
)
def test_is_loopback_host(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback
