"""The ``sneaker`` command group; each verb lives in its own module, imported only when used."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys

import click

from .. import __version__
from .render import run_guarded

# verb name -> (module under sneaker.cli, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "pull": ("pull", "Pull images from registries into a docker-loadable or OCI archive."),
    "push": ("push", "Push the images of an archive to a registry."),
    "serve": ("serve", "Serve archives as a read-only registry."),
    "inspect": ("inspect", "Show platforms, digests, sizes and layers of an image or archive."),
    "verify": ("verify", "Check every digest, size and link in an archive."),
    "unpack": ("unpack", "Extract an image's root filesystem into a directory."),
    "plan": ("plan", "Resolve images now and write a download plan for curl."),
    "assemble": ("assemble", "Check a fetched plan and write an archive from it."),
    "inventory": ("inventory", "List the blobs a registry or archive already has."),
    "login": ("login", "Check and store credentials for a registry."),
    "logout": ("logout", "Remove stored credentials for a registry."),
    "cache": ("cache", "See, check and prune the blob cache."),
    "completion": (
        "completion",
        "Print a shell completion script (bash, zsh, fish or PowerShell).",
    ),
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use, keeping start-up fast."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name for name, (module, _) in COMMANDS.items() if _module_exists(module))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        try:
            module = importlib.import_module(f"{__package__}.{entry[0]}")
        except ModuleNotFoundError as exc:
            if exc.name == f"{__package__}.{entry[0]}":
                return None
            raise
        command: click.Command = module.command
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][1]) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def _module_exists(module: str) -> bool:
    try:
        return importlib.util.find_spec(f"{__package__}.{module}") is not None
    except (ImportError, ValueError):
        return False


def _version_text() -> str:
    from ..util.speedups import describe_speedups

    return f"sneaker {__version__} (Python {sys.version.split()[0]}; {describe_speedups()})"


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(_version_text())
        ctx.exit(0)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--version",
    is_flag=True,
    is_eager=True,
    expose_value=False,
    callback=_print_version,
    help="Show the version and the optional speed-ups in use, then exit.",
)
def cli() -> None:
    """Carry container images across an air gap, without a Docker daemon.

    Add --debug anywhere for a full trace on errors and the debug log; -v on a
    verb that talks to registries logs each HTTP request.
    """


def main(argv: list[str] | None = None) -> int:
    if os.environ.get("_SNEAKER_COMPLETE", "").startswith("powershell_"):
        from .completion import register_powershell  # only PowerShell's completion asks

        register_powershell()
    return run_guarded(cli, argv)
