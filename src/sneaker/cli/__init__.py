"""The command line: parses, dispatches to :mod:`sneaker.verbs`, renders errors. Nothing else."""

from .main import main

__all__ = ["main"]
