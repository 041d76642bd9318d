"""The shell examples of README.md and docs/*.md: every ``sneaker`` command parses as the
CLI would parse it (options, their values where a choice or range, the arguments), every
other command is one this test knows, and every file an example reads was written by an
earlier example of the same document (or is part of the checkout).

Blocks marked ``sh`` are scripts (every line a command); ``console`` blocks show commands
after ``$ `` and their output. ``cd`` changes the directory until the block ends.
"""

from __future__ import annotations

import fnmatch
import itertools
import posixpath
import re
import shlex
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import click
import pytest

from sneaker.cli.main import cli
from sneaker.image.reference import parse_reference
from sneaker.verbs.pull import default_output_name
from tests.helpers import REPO_ROOT

DOCS = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
_FENCE = re.compile(r"^```(\w*)\s*$")
_SHELL_BLOCKS = {"sh", "console", "shell", "bash"}
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_OPERATORS = {"&&", "||", ";", "|", "&"}

#: per verb, the parameters that name files it reads ("maybe": only when path-like)
READS: dict[str, tuple[str, ...]] = {
    "pull": ("images_files", "from_files", "since", "have"),
    "plan": ("images_files", "from_files"),
    "push": ("archive",),
    "serve": ("archives", "tls_cert", "tls_key"),
    "verify": ("archive",),
    "assemble": ("plan_dir",),
}
MAYBE_READS: dict[str, tuple[str, ...]] = {
    "inspect": ("target",),
    "unpack": ("source",),
    "inventory": ("sources",),
}
WRITES: dict[str, tuple[str, ...]] = {
    "pull": ("output",),
    "plan": ("output",),
    "assemble": ("output",),
    "inventory": ("output",),
    "unpack": ("dest",),
}


@dataclass
class Command:
    doc: str
    line: int
    text: str
    words: list[str]


@dataclass
class Session:
    """What the examples of one document have written so far."""

    written: set[str] = field(default_factory=set)
    cwd: str = "."

    def path(self, name: str) -> str:
        return posixpath.normpath(posixpath.join(self.cwd, name))

    def write(self, name: str) -> None:
        self.written.add(self.path(name))

    def was_written(self, name: str) -> bool:
        path = self.path(name)
        if (REPO_ROOT / path).exists():
            return True  # part of the checkout
        for done in self.written:
            if fnmatch.fnmatchcase(done, path) or path.startswith(done.rstrip("/") + "/"):
                return True
        return False


def require(condition: object, message: str) -> None:
    if not condition:
        pytest.fail(message, pytrace=False)


def shell_blocks(doc: Path) -> Iterator[tuple[str, int, list[tuple[int, str]]]]:
    """(kind, first line, [(line number, text)]) of each shell block of ``doc``."""
    kind: str | None = None
    lines: list[tuple[int, str]] = []
    start = 0
    for number, text in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1):
        fence = _FENCE.match(text)
        if fence and kind is None:
            kind, lines, start = fence.group(1), [], number
        elif text.strip() == "```" and kind is not None:
            if kind in _SHELL_BLOCKS:
                yield kind, start, lines
            kind = None
        elif kind is not None:
            lines.append((number, text))


def commands(doc: Path) -> Iterator[tuple[int, list[Command]]]:
    """Each shell block's commands, continuation lines joined, in order."""
    for kind, start, lines in shell_blocks(doc):
        found: list[Command] = []
        pending = ""
        first = 0
        for number, text in lines:
            if not pending:
                if kind == "console":
                    if not text.startswith("$ "):
                        continue  # output
                    text = text[2:]
                first = number
            pending += text
            if pending.endswith("\\"):
                pending = pending[:-1] + " "
                continue
            words = _words(pending)
            if words:
                found.append(Command(doc.name, first, pending.strip(), words))
            pending = ""
        yield start, found


def _words(text: str) -> list[str]:
    lexer = shlex.shlex(text, posix=True, punctuation_chars=";&|<>")
    lexer.whitespace_split = True
    lexer.commenters = "#"
    return list(lexer)


def simple_commands(words: Sequence[str]) -> Iterator[tuple[list[str], bool]]:
    """Each simple command, and whether its standard input is the pipe of the one before."""
    current: list[str] = []
    piped = False
    for word in words:
        if word in _OPERATORS:
            if current:
                yield current, piped
            current = []
            piped = word == "|"
        else:
            current.append(word)
    if current:
        yield current, piped


def check_sneaker(args: list[str], session: Session, where: str) -> None:
    """Parse ``sneaker ARGS`` as click would, without running it; record its files."""
    ctx = click.Context(cli, info_name="sneaker")
    if not args or args[0].startswith("-"):
        _, rest, _ = cli.make_parser(ctx).parse_args(list(args))
        require(not rest, f"{where}: unexpected {rest}")
        return
    command = cli.get_command(ctx, args[0])
    require(command is not None, f"{where}: no command {args[0]!r}")
    sub = click.Context(command, info_name=args[0], parent=ctx)
    while isinstance(command, click.Group):  # ``sneaker cache prune ...``: the subcommand's
        require(len(args) > 1, f"{where}: {args[0]} needs a subcommand")
        command = command.get_command(sub, args[1])
        require(command is not None, f"{where}: no command {args[0]} {args[1]!r}")
        args = [f"{args[0]} {args[1]}", *args[2:]]
        sub = click.Context(command, info_name=args[0], parent=sub)
    try:
        values, extra, _ = command.make_parser(sub).parse_args(list(args[1:]))
    except click.UsageError as exc:
        pytest.fail(f"{where}: {exc.format_message()}", pytrace=False)
    require(not extra, f"{where}: unexpected extra arguments {extra}")
    for param in command.params:
        value = values.get(param.name or "")
        if value is None:
            require(
                not (isinstance(param, click.Argument) and param.required),
                (f"{where}: missing argument {param.name}"),
            )
            continue
        if isinstance(param.type, (click.Choice, click.IntRange)) or param.type is click.INT:
            for item in value if isinstance(value, (list, tuple)) else [value]:
                try:
                    param.type.convert(item, param, sub)
                except click.BadParameter as exc:
                    pytest.fail(f"{where}: {param.name}: {exc.format_message()}", pytrace=False)
    verb = args[0]
    for name in READS.get(verb, ()) + MAYBE_READS.get(verb, ()):
        for value in _as_list(values.get(name)):
            maybe = name in MAYBE_READS.get(verb, ())
            if value == "-" or (maybe and not _path_like(value, session)):
                continue
            require(
                session.was_written(value),
                (f"{where}: reads {value!r}, which no earlier example of the document wrote"),
            )
    outputs = [v for name in WRITES.get(verb, ()) for v in _as_list(values.get(name))]
    if verb == "pull" and not outputs:
        images = _as_list(values.get("images"))
        outputs = [default_output_name(parse_reference(images[0]))] if images else []
    for output in outputs:
        if output == "-":
            continue  # standard output
        session.write(output)
        if values.get("split"):
            session.write(f"{output}.000")
            session.write(f"{output}.sha256")


def _as_list(value: object) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return [str(value)]


def _path_like(value: str, session: Session) -> bool:
    if ":" in value:
        return False  # a reference or a registry
    return value.endswith((".tar", ".json", "/")) or session.was_written(value)


#: openssl options naming files it reads, and files it writes
_OPENSSL_READS = ("-in", "-CA", "-CAkey", "-key")
_OPENSSL_WRITES = ("-out", "-keyout")


def _check_openssl(args: list[str], session: Session, where: str) -> None:
    for option, value in itertools.pairwise(args):
        if option in _OPENSSL_READS:
            require(session.was_written(value), f"{where}: reads {value!r}, never written")
    for option, value in itertools.pairwise(args):
        if option in _OPENSSL_WRITES:
            session.write(value)


def check_command(words: list[str], session: Session, where: str, piped: bool = False) -> None:
    """Check one simple command (no operators) and record what it writes; ``piped``: its
    standard input is the output of the command before it."""
    words = list(words)
    while words and _ASSIGNMENT.match(words[0]):
        words.pop(0)
    redirects: list[tuple[str, str]] = []
    plain: list[str] = []
    tokens = iter(words)
    for word in tokens:
        if word in ("<", ">"):
            redirects.append((word, next(tokens, "")))
        else:
            plain.append(word)
    for op, target in redirects:
        if op == "<":
            require(session.was_written(target), f"{where}: reads {target!r} (< redirection)")
    words = plain
    require(words, f"{where}: no command")
    name, args = words[0], words[1:]
    if name == "sneaker" or name == "$(python3 scripts/install)":
        check_sneaker(args, session, where)
    elif name in ("python3", "py") and args and args[0].endswith("sneaker.pyz"):
        require(session.was_written(args[0]), f"{where}: runs {args[0]}, not built before")
        check_sneaker(args[1:], session, where)
    elif name == "python3" and args and args[0].startswith("scripts/"):
        require((REPO_ROOT / args[0]).is_file(), f"{where}: no {args[0]} in the checkout")
        if args[0] == "scripts/zipapp":
            session.write(args[1] if len(args) > 1 else "dist/sneaker.pyz")
    elif name == "scripts/test":
        require((REPO_ROOT / name).is_file(), f"{where}: no {name} in the checkout")
        session.write(".venv/")
    elif name == ".venv/bin/python":
        require(session.was_written(name), f"{where}: {name} before scripts/test made it")
    elif name == "cd":
        require(len(args) == 1, f"{where}: cd takes one directory")
        require(session.was_written(args[0]), f"{where}: cd into {args[0]!r}, never made")
        session.cwd = session.path(args[0])
    elif name in ("printf", "echo", "export"):
        pass
    elif name in ("cat", "sh") or (name == "sha256sum" and args[:1] == ["-c"]):
        files = [a for a in args if not a.startswith("-")]
        for read in files[:1] if name == "sh" else files:
            require(session.was_written(read), f"{where}: reads {read!r}, never written")
    elif name in ("docker", "podman") and args[:1] == ["load"]:
        if "-i" in args:
            archive = args[args.index("-i") + 1]
            require(session.was_written(archive), f"{where}: loads {archive!r}, never written")
        else:
            require(piped, f"{where}: {name} load without -i, and nothing piped into it")
    elif name == "ssh":
        require(len(args) >= 2, f"{where}: ssh HOST COMMAND")
        check_command(args[1:], session, where, piped)  # the command runs there, same input
    elif name == "gzip":
        require(piped or any(not a.startswith("-") for a in args), f"{where}: gzip of nothing")
    elif name == "openssl":
        _check_openssl(args, session, where)
    else:
        pytest.fail(f"{where}: this test does not know the command {name!r}", pytrace=False)
    for op, target in redirects:
        if op == ">":
            session.write(target)


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_example_parses_and_reads_only_what_an_earlier_one_wrote(doc: Path) -> None:
    session = Session()
    checked = 0
    if not any(shell_blocks(doc)):
        return  # a doc without shell blocks (docs/architecture.md) has no example to check
    for _, block in commands(doc):
        session.cwd = "."
        for command in block:
            where = f"{command.doc}:{command.line}: {command.text}"
            for words, piped in simple_commands(command.words):
                check_command(words, session, where, piped)
                checked += 1
    assert checked > 0, f"{doc.name} has shell blocks, and no command was found in them"


def test_the_checker_catches_what_it_is_for(tmp_path: Path) -> None:
    """An unknown option, a bad choice, an extra argument, a file read before anything
    wrote it, an unknown command or subcommand, a group without its subcommand, and docker
    load with nothing to load each fail; their fixed forms pass."""
    doc = tmp_path / "x.md"
    bad = [
        "sneaker pull --bogus ubuntu",
        "sneaker pull --format tarball ubuntu",
        "sneaker push a.tar b c",
        "sneaker push app.tar registry.local:5000/x",
        "frobnicate --all",
        "sneaker cache prune --bogus",
        "sneaker cache tidy",
        "sneaker cache",
        "docker load",
        "sneaker serve app.tar --tls-cert app.crt --tls-key app.key",
    ]
    for text in bad:
        doc.write_text(f"```sh\n{text}\n```\n")
        with pytest.raises(pytest.fail.Exception):  # each a failure of the checker
            test_every_example_parses_and_reads_only_what_an_earlier_one_wrote(doc)
    doc.write_text(
        "```sh\nsneaker pull --format oci ubuntu -o app.tar  # note\n"
        "sneaker push app.tar registry.local:5000/x\n"
        "sneaker cache prune --all --dry-run\n"
        "sneaker pull ubuntu -o - | ssh host docker load\n"
        "openssl req -x509 -keyout app.key -out app.crt\n"
        "sneaker serve app.tar --tls-cert app.crt --tls-key app.key\n```\n"
        "```console\n$ sneaker verify app.tar\nproblem: none\n```\n"
    )
    test_every_example_parses_and_reads_only_what_an_earlier_one_wrote(doc)
