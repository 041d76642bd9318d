"""The package root's public names: ``__all__`` is honest and ``import sneaker`` stays cheap."""

from __future__ import annotations

import subprocess
import sys

import sneaker


def test_all_matches_exports() -> None:
    exported = set(sneaker._EXPORTS) | {"__version__"}
    assert set(sneaker.__all__) == exported
    assert len(sneaker.__all__) == len(set(sneaker.__all__))


def test_every_public_name_resolves() -> None:
    for name in sneaker.__all__:
        assert getattr(sneaker, name) is not None, name


def test_import_is_lazy() -> None:
    code = (
        "import sys, sneaker; "
        "heavy = [m for m in ('urllib3', 'rich', 'click', 'yaml') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
