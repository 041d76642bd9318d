"""``sneaker completion SHELL``: the completion script click generates for sneaker."""

from __future__ import annotations

import click

COMPLETE_VAR = "_SNEAKER_COMPLETE"


@click.command("completion")
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def command(shell: str) -> None:
    """Print the completion script for SHELL.

    \b
    bash:  eval "$(sneaker completion bash)"        (in ~/.bashrc)
    zsh:   eval "$(sneaker completion zsh)"         (in ~/.zshrc)
    fish:  sneaker completion fish > ~/.config/fish/completions/sneaker.fish
    """
    from click.shell_completion import get_completion_class

    from .main import cli

    completion_class = get_completion_class(shell)
    assert completion_class is not None  # the Choice above admits only known shells
    click.echo(completion_class(cli, {}, "sneaker", COMPLETE_VAR).source())
