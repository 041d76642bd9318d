"""What verbs that write an archive or layout report about it (pull, assemble)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..archive.tar import is_stdout
from ..util.progress import count, human_size

__all__ = ["FORMAT_NAMES", "WrittenOutput"]

#: output kinds as people read them
FORMAT_NAMES = {
    "docker-archive": "docker archive",
    "oci-archive": "OCI archive",
    "oci-layout": "OCI layout",
}


@dataclass
class WrittenOutput:
    """An archive (possibly split into ``parts``) or an OCI layout directory."""

    output: Path
    format: str
    parts: list[Path] = field(default_factory=list)

    @property
    def streamed(self) -> bool:
        """Whether the archive went to standard output (``-o -``)."""
        return is_stdout(self.output)

    @property
    def size(self) -> int:
        if self.parts:
            return sum(p.stat().st_size for p in self.parts)
        if self.output.is_dir():
            return sum(p.stat().st_size for p in self.output.rglob("*") if p.is_file())
        return self.output.stat().st_size

    def describe(self) -> str:
        """``bundle.tar (docker archive, 1.2 GB)`` or ``3 parts of bundle.tar (...)``, or
        ``the docker archive to standard output``."""
        kind = FORMAT_NAMES.get(self.format, self.format)
        if self.streamed:
            return f"the {kind} to standard output"
        where = str(self.output)
        if self.parts:
            where = f"{count(len(self.parts), 'part')} of {self.output}"
        return f"{where} ({kind}, {human_size(self.size)})"

    def output_json(self) -> dict[str, Any]:
        return {
            "output": str(self.output),
            "format": self.format,
            "size": self.size,
            "parts": [str(p) for p in self.parts],
        }
