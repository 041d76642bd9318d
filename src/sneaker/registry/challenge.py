"""``WWW-Authenticate`` challenges and token scopes. Pure logic, no I/O.

A header may hold several challenges (``Bearer realm="…", Basic realm="…"``),
a response may carry several headers, parameters may be quoted strings holding
commas and backslash escapes, and scheme and parameter names are
case-insensitive (RFC 7235 section 2.1, RFC 9110 section 11.6.1).

Scopes follow distribution's token specification:
``resourcetype:resourcename:action[,action...]``, several separated by spaces.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..errors import AuthError

__all__ = [
    "Challenge",
    "Scope",
    "covers_all",
    "merge_scopes",
    "parse_challenges",
    "parse_scopes",
    "pick_challenge",
    "scopes_for_mount",
    "scopes_for_pull",
    "scopes_for_push",
]

_TOKEN_CHARS = frozenset(
    "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)
_TOKEN68_CHARS = frozenset("-._~+/0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_SPACE = " \t"
_ACTION_ORDER = {"pull": 0, "push": 1, "delete": 2}


@dataclass(frozen=True)
class Challenge:
    """One authentication challenge: its scheme (lower case), parameters, or a token68."""

    scheme: str
    params: tuple[tuple[str, str], ...] = ()
    token68: str | None = None

    def param(self, name: str) -> str | None:
        """The value of parameter ``name`` (case-insensitive); the first when repeated."""
        wanted = name.lower()
        for key, value in self.params:
            if key == wanted:
                return value
        return None

    @property
    def realm(self) -> str | None:
        return self.param("realm")

    @property
    def service(self) -> str | None:
        return self.param("service")

    @property
    def scopes(self) -> tuple[Scope, ...]:
        """The scopes the challenge names (empty when it names none or they do not parse)."""
        text = self.param("scope")
        return parse_scopes(text) if text else ()

    @property
    def error(self) -> str | None:
        return self.param("error")

    @property
    def is_insufficient_scope(self) -> bool:
        """distribution's answer to a token that lacks an action the request needs."""
        return (self.error or "").lower() == "insufficient_scope"

    def __str__(self) -> str:
        if self.token68 is not None:
            return f"{self.scheme} {self.token68}"
        rendered = ", ".join(f'{k}="{_escape(v)}"' for k, v in self.params)
        return f"{self.scheme} {rendered}".rstrip()


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


class _Cursor:
    """A position in one header value, with the few reads the grammar needs."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in _SPACE:
            self.pos += 1

    def skip_separators(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in " \t,":
            self.pos += 1

    def read_while(self, chars: frozenset[str]) -> str:
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] in chars:
            self.pos += 1
        return self.text[start : self.pos]

    def read_quoted(self) -> str:
        """A quoted string starting at the opening quote; an unterminated one runs to the end."""
        self.pos += 1
        out: list[str] = []
        while self.pos < len(self.text):
            char = self.text[self.pos]
            self.pos += 1
            if char == "\\" and self.pos < len(self.text):
                out.append(self.text[self.pos])
                self.pos += 1
            elif char == '"':
                break
            else:
                out.append(char)
        return "".join(out)

    def skip_to_comma(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] != ",":
            if self.text[self.pos] == '"':
                self.read_quoted()
            else:
                self.pos += 1


def _try_token68(cur: _Cursor) -> str | None:
    """A token68 followed by the end or a comma, else None with the cursor unchanged.

    ``name=value`` never matches: token68 allows ``=`` only as trailing padding.
    """
    start = cur.pos
    body = cur.read_while(_TOKEN68_CHARS)
    if body:
        body += cur.read_while(frozenset("="))
        cur.skip_space()
        if cur.at_end() or cur.peek() == ",":
            return body
    cur.pos = start
    return None


def _try_param(cur: _Cursor) -> tuple[str, str] | None:
    """``name = value`` at the cursor, else None with the cursor unchanged."""
    start = cur.pos
    name = cur.read_while(_TOKEN_CHARS)
    cur.skip_space()
    if not name or cur.peek() != "=":
        cur.pos = start
        return None
    cur.pos += 1
    cur.skip_space()
    value = cur.read_quoted() if cur.peek() == '"' else cur.read_while(_TOKEN_CHARS)
    return name.lower(), value


def _parse_one_header(text: str) -> list[Challenge]:
    cur = _Cursor(text)
    challenges: list[Challenge] = []
    while True:
        cur.skip_separators()
        if cur.at_end():
            return challenges
        scheme = cur.read_while(_TOKEN_CHARS)
        if not scheme:
            cur.skip_to_comma()  # garbage: drop up to the next comma
            continue
        if cur.peek() not in ("", ",", " ", "\t"):
            cur.skip_to_comma()
            continue
        cur.skip_space()
        token68 = _try_token68(cur)
        if token68 is not None:
            challenges.append(Challenge(scheme.lower(), (), token68))
            continue
        params: list[tuple[str, str]] = []
        while True:
            cur.skip_space()
            param = _try_param(cur)
            if param is None:
                break
            params.append(param)
            cur.skip_space()
            if cur.peek() not in ("", ","):
                cur.skip_to_comma()  # junk after a value: ignore it
            # Another parameter of this challenge, or the start of the next one?
            mark = cur.pos
            cur.skip_separators()
            if cur.at_end():
                break
            if _try_param(_Cursor(cur.text[cur.pos :])) is None:
                cur.pos = mark
                break
        challenges.append(Challenge(scheme.lower(), tuple(params)))


def parse_challenges(headers: str | Iterable[str]) -> tuple[Challenge, ...]:
    """Every challenge in one or several ``WWW-Authenticate`` values, in order.

    Malformed parts are skipped: a registry that sends junk next to a valid
    challenge still gets the valid one used.
    """
    values = [headers] if isinstance(headers, str) else list(headers)
    out: list[Challenge] = []
    for value in values:
        out.extend(_parse_one_header(value))
    return tuple(out)


def pick_challenge(challenges: Sequence[Challenge]) -> Challenge | None:
    """The challenge sneaker answers: Bearer (with a realm) before Basic, else None."""
    for scheme in ("bearer", "basic"):
        for challenge in challenges:
            if challenge.scheme == scheme and (scheme != "bearer" or challenge.realm):
                return challenge
    return None


@dataclass(frozen=True, order=True)
class Scope:
    """``resource_type:name:actions``, actions kept sorted (pull, push, delete, others)."""

    resource_type: str
    name: str
    actions: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "actions", _sort_actions(self.actions))

    @classmethod
    def parse(cls, text: str) -> Scope:
        """``repository:library/ubuntu:pull,push``; the name may itself hold ``:``."""
        resource_type, sep1, rest = text.partition(":")
        name, sep2, actions = rest.rpartition(":")
        if not sep1 or not sep2 or not resource_type or not name:
            raise AuthError(f"invalid token scope {text!r}: expected type:name:actions")
        return cls(resource_type, name, tuple(a for a in actions.split(",") if a))

    @classmethod
    def repository(cls, name: str, *actions: str) -> Scope:
        return cls("repository", name, actions)

    @classmethod
    def catalog(cls) -> Scope:
        return cls("registry", "catalog", ("*",))

    @property
    def key(self) -> tuple[str, str]:
        return (self.resource_type, self.name)

    def covers(self, other: Scope) -> bool:
        """Does holding this scope grant everything ``other`` asks for?"""
        if self.key != other.key:
            return False
        return "*" in self.actions or set(other.actions) <= set(self.actions)

    def union(self, other: Scope) -> Scope:
        if self.key != other.key:
            raise ValueError(f"cannot merge scopes of {self.key} and {other.key}")
        return Scope(self.resource_type, self.name, tuple(set(self.actions) | set(other.actions)))

    def __str__(self) -> str:
        return f"{self.resource_type}:{self.name}:{','.join(self.actions)}"


def _sort_actions(actions: Iterable[str]) -> tuple[str, ...]:
    unique = {a.strip() for a in actions if a.strip()}
    return tuple(sorted(unique, key=lambda a: (_ACTION_ORDER.get(a, 9), a)))


def parse_scopes(text: str) -> tuple[Scope, ...]:
    """Space-separated scopes (as in a challenge's ``scope``); malformed ones are skipped."""
    out: list[Scope] = []
    for item in text.split():
        try:
            out.append(Scope.parse(item))
        except AuthError:
            continue
    return tuple(out)


def merge_scopes(*groups: Iterable[Scope]) -> tuple[Scope, ...]:
    """One scope per resource, holding the union of the actions asked for; sorted."""
    merged: dict[tuple[str, str], Scope] = {}
    for group in groups:
        for scope in group:
            known = merged.get(scope.key)
            merged[scope.key] = scope if known is None else known.union(scope)
    return tuple(sorted(merged.values()))


def covers_all(held: Iterable[Scope], wanted: Iterable[Scope]) -> bool:
    """Does the set ``held`` grant every scope in ``wanted``?"""
    held = tuple(held)
    return all(any(h.covers(w) for h in held) for w in wanted)


def scopes_for_pull(repository: str) -> tuple[Scope, ...]:
    return (Scope.repository(repository, "pull"),)


def scopes_for_push(repository: str) -> tuple[Scope, ...]:
    return (Scope.repository(repository, "pull", "push"),)


def scopes_for_mount(repository: str, from_repository: str) -> tuple[Scope, ...]:
    """A cross-repository mount needs push on the target and pull on the source."""
    return merge_scopes(scopes_for_push(repository), scopes_for_pull(from_repository))
