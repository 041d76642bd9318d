"""Turning exceptions into one line (``error: ...`` / ``hint: ...``) and an exit code."""

from __future__ import annotations

import os
import signal
import sys
import threading
import warnings
from typing import Any, TextIO

import click

from ..errors import Interrupted, SneakerError, cap


def debug_enabled() -> bool:
    return os.environ.get("SNEAKER_DEBUG", "") not in ("", "0")


def _one_line(text: str) -> str:
    """One line, never longer than ``MAX_LINE`` (a last resort: lists are summed up where
    they are joined into a message)."""
    return cap(" ".join(text.split()))


def report(exc: BaseException) -> int:
    """Print ``exc`` for a person and return the exit code that goes with it."""
    if debug_enabled():
        import traceback  # only for --debug: keeps start-up (sneaker --version) lean

        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    if isinstance(exc, OSError):
        from ..util.oserrors import file_error, is_file_error

        if is_file_error(exc):
            exc = file_error(exc, "access")
    if isinstance(exc, SneakerError):
        click.echo(f"error: {_one_line(exc.message)}", err=True)
        if exc.hint:
            click.echo(f"hint: {_one_line(exc.hint)}", err=True)
        return exc.exit_code
    if isinstance(exc, KeyboardInterrupt):
        click.echo("error: interrupted", err=True)
        return Interrupted.exit_code
    if isinstance(exc, OSError):
        where = f" ({exc.filename})" if exc.filename else ""
        click.echo(f"error: {_one_line(str(exc.strerror or exc))}{where}", err=True)
        return 1
    click.echo(f"error: internal error: {type(exc).__name__}: {_one_line(str(exc))}", err=True)
    click.echo("hint: run again with --debug for the full trace, and report it", err=True)
    return 1


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    """Python warnings (``--insecure``'s, say) as ``warning: ...`` lines, not source excerpts."""
    click.echo(f"warning: {_one_line(str(message))}", err=True)


# click >= 8.2 raises this for a group run with no arguments; older click exits with the help
_NO_ARGS_IS_HELP: type[click.ClickException] = getattr(
    click.exceptions, "NoArgsIsHelpError", type("_Never", (click.ClickException,), {})
)


def run_guarded(command: click.Command, argv: list[str] | None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if "--debug" in args:
        args.remove("--debug")
        os.environ["SNEAKER_DEBUG"] = "1"
    stop_log = None
    if debug_enabled():
        import logging  # only for --debug: keeps start-up lean

        from .verbose import enable_log

        stop_log = enable_log(logging.DEBUG)
    shown = warnings.showwarning
    warnings.showwarning = _show_warning
    previous = _terminate_like_ctrl_c()
    try:
        return _run(command, args)
    finally:
        warnings.showwarning = shown
        if stop_log is not None:
            stop_log()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _terminate_like_ctrl_c() -> Any:
    """SIGTERM unwinds like Ctrl-C, so temporary files are removed on the way out."""
    if threading.current_thread() is not threading.main_thread():
        return None
    try:
        return signal.signal(signal.SIGTERM, _raise_interrupt)
    except (ValueError, OSError):  # not the main interpreter, or no signals here
        return None


def _run(command: click.Command, args: list[str]) -> int:
    try:
        result: Any = command.main(args=args, prog_name="sneaker", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("error: interrupted", err=True)
        return Interrupted.exit_code
    except _NO_ARGS_IS_HELP as exc:
        # ``sneaker`` alone: the help, as it reads with --help
        click.echo(exc.format_message())
        return 0
    except click.ClickException as exc:
        click.echo(f"error: {_one_line(exc.format_message())}", err=True)
        return 2
    except BaseException as exc:
        if isinstance(exc, SystemExit):
            return int(exc.code) if isinstance(exc.code, int) else 1
        return report(exc)
    return int(result) if isinstance(result, int) else 0
