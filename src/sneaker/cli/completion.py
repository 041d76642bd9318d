"""``sneaker completion SHELL``: a completion script for bash, zsh, fish or PowerShell.

Each script asks sneaker itself what completes the words typed so far: it runs the
program with ``_SNEAKER_COMPLETE=SHELL_complete`` and the words in ``COMP_WORDS`` and
``COMP_CWORD``, and click answers (one completion a line, in the format the script
reads). The program it runs is the one that printed the script:

* the ``sneaker`` command, as installed;
* run from the zipapp (``python3 sneaker.pyz completion bash``): that Python and that
  file, by their full paths. bash, zsh and fish get a ``sneaker`` function that runs
  them, completed like the command; PowerShell completes ``py``, ``python`` and
  ``python3`` when their first argument is that file (``py sneaker.pyz pu<Tab>``),
  since PowerShell completes native commands only.

click keys its own scripts on the program's name, which a zipapp does not have; these
scripts are sneaker's, written for both cases. PowerShell's answer is one ``TYPE<tab>
VALUE<tab>HELP`` line per completion (:class:`PowerShellComplete`).
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path, PureWindowsPath

import click

__all__ = ["COMPLETE_VAR", "SHELLS", "command", "register_powershell", "script"]

COMPLETE_VAR = "_SNEAKER_COMPLETE"
NAME = "sneaker"
SHELLS = ("bash", "zsh", "fish", "powershell")

_BASH = r"""
_sneaker_completion() {
    local line kind value reply
    reply=$(COMP_WORDS="${COMP_WORDS[*]}" COMP_CWORD=$COMP_CWORD \
_SNEAKER_COMPLETE=bash_complete @RUN@ 2>/dev/null)
    COMPREPLY=()
    while IFS= read -r line; do
        kind=${line%%,*}
        value=${line#*,}
        case $kind in
            plain) COMPREPLY+=("$value") ;;
            dir) compopt -o dirnames ;;
            file) compopt -o default ;;
        esac
    done <<< "$reply"
    return 0
}
complete -o nosort -F _sneaker_completion sneaker
"""

_ZSH = r"""
_sneaker_completion() {
    local -a reply plain described
    local kind key help
    reply=("${(@f)$(COMP_WORDS="${words[*]}" COMP_CWORD=$((CURRENT-1)) \
_SNEAKER_COMPLETE=zsh_complete @RUN@ 2>/dev/null)}")
    for kind key help in "${reply[@]}"; do
        case $kind in
            plain) if [[ $help == _ ]]; then plain+=("$key"); else described+=("$key:$help"); fi ;;
            dir) _path_files -/ ;;
            file) _path_files -f ;;
        esac
    done
    (( ${#described} )) && _describe -V unsorted described -U
    (( ${#plain} )) && compadd -U -V unsorted -a plain
    return 0
}
compdef _sneaker_completion sneaker
"""

_FISH = r"""
function _sneaker_completion
    set -l reply (env _SNEAKER_COMPLETE=fish_complete COMP_WORDS=(commandline -cp) \
COMP_CWORD=(commandline -t) @RUN@ 2>/dev/null)
    for line in $reply
        set -l parts (string split -m 1 ',' -- $line)
        switch $parts[1]
            case plain
                echo $parts[2]
            case dir
                __fish_complete_directories $parts[2]
            case file
                __fish_complete_path $parts[2]
        end
    end
end
complete --no-files --command sneaker --arguments '(_sneaker_completion)'
"""

# @COMMANDS@: what PowerShell completes; @FIRST@: the element that stands for the program
# (0: the command itself; 1: the zipapp after py/python); @ARCHIVE@: that file's name
_POWERSHELL = r"""
Register-ArgumentCompleter -Native -CommandName @COMMANDS@ -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)
    $first = @FIRST@
    $elements = @($commandAst.CommandElements |
        Where-Object { $_.Extent.StartOffset -lt $cursorPosition } |
        ForEach-Object { $_.Extent.Text })
    if ($first -gt 0) {
        if ($elements.Count -le $first) { return }
        $program = [System.IO.Path]::GetFileName($elements[$first].Trim([char[]]"'`""))
        if ($program -ne '@ARCHIVE@') { return }
    }
    $words = @($elements | Select-Object -Skip $first)
    $cword = $words.Count
    if ($wordToComplete) { $cword = $cword - 1 } else { $words += "''" }
    $saved = @($env:_SNEAKER_COMPLETE, $env:COMP_WORDS, $env:COMP_CWORD)
    try {
        $env:_SNEAKER_COMPLETE = 'powershell_complete'
        $env:COMP_WORDS = $words -join ' '
        $env:COMP_CWORD = "$cword"
        $reply = @(& @RUN@ 2>$null)
    } finally {
        $env:_SNEAKER_COMPLETE, $env:COMP_WORDS, $env:COMP_CWORD = $saved
    }
    foreach ($line in $reply) {
        $kind, $value, $help = "$line" -split "`t", 3
        if ($kind -eq 'plain') {
            if (-not $help) { $help = $value }
            [System.Management.Automation.CompletionResult]::new(
                $value, $value, 'ParameterValue', $help)
        }
    }
}
"""


def zipapp() -> Path | None:
    """The ``.pyz`` file sneaker runs from, or None (an installed sneaker)."""
    archive = Path(__file__).resolve().parents[2]
    return archive if archive.is_file() else None


def _runner() -> list[str]:
    """The program a completion script runs: ``sneaker``, or this Python and zipapp."""
    archive = zipapp()
    if archive is None:
        return [NAME]
    return [sys.executable or "python3", str(archive)]


def _powershell_quote(word: str) -> str:
    return "'" + word.replace("'", "''") + "'"


def script(shell: str, runner: list[str] | None = None) -> str:
    """The completion script for ``shell``, running ``runner`` (default: this program)."""
    run = runner if runner is not None else _runner()
    zipped = run != [NAME]
    if shell == "powershell":
        text = _POWERSHELL.replace("@RUN@", " ".join(map(_powershell_quote, run)))
        if not zipped:
            return text.replace("@COMMANDS@", NAME).replace("@FIRST@", "0").lstrip()
        commands = "@(" + ", ".join(map(_powershell_quote, ("py", "python", "python3"))) + ")"
        text = text.replace("@COMMANDS@", commands).replace("@FIRST@", "1")
        archive = PureWindowsPath(run[-1]).name  # either separator: the script may be for Windows
        return text.replace("@ARCHIVE@", archive.replace("'", "''")).lstrip()
    quoted = shlex.join(run)
    template = {"bash": _BASH, "zsh": _ZSH, "fish": _FISH}[shell]
    text = template.replace("@RUN@", quoted)
    if zipped:  # a function named like the command, running the zipapp
        if shell == "fish":
            wrapper = f"function {NAME}\n    {quoted} $argv\nend\n"
        else:
            wrapper = f'{NAME}() {{ {quoted} "$@"; }}\n'
        text = wrapper + text
    return ("#compdef sneaker\n" if shell == "zsh" else "") + text.lstrip()


def register_powershell() -> None:
    """Teach click the ``powershell_complete`` instruction the PowerShell script sends."""
    from click.shell_completion import (
        CompletionItem,
        ShellComplete,
        add_completion_class,
        split_arg_string,
    )

    class PowerShellComplete(ShellComplete):
        name = "powershell"
        source_template = ""  # sneaker's script() writes the script

        def get_completion_args(self) -> tuple[list[str], str]:
            words = split_arg_string(os.environ.get("COMP_WORDS", ""))
            cword = int(os.environ.get("COMP_CWORD", "0") or 0)
            incomplete = words[cword] if cword < len(words) else ""
            return words[1:cword], incomplete

        def format_completion(self, item: CompletionItem) -> str:
            help_ = " ".join(str(item.help or "").split())
            return f"{item.type}\t{item.value}\t{help_}"

    add_completion_class(PowerShellComplete)


@click.command("completion")
@click.argument("shell", type=click.Choice(SHELLS))
def command(shell: str) -> None:
    """Print the completion script for SHELL (bash, zsh, fish or powershell).

    \b
    bash:  eval "$(sneaker completion bash)"        (in ~/.bashrc)
    zsh:   eval "$(sneaker completion zsh)"         (in ~/.zshrc)
    fish:  sneaker completion fish > ~/.config/fish/completions/sneaker.fish
    PowerShell: sneaker completion powershell | Out-String | Invoke-Expression
                (in $PROFILE)

    Run from the zipapp (python3 sneaker.pyz completion bash), the script runs that
    file and defines a sneaker function for it; in PowerShell it completes
    'py sneaker.pyz ...' as typed.
    """
    click.echo(script(shell), nl=False)
