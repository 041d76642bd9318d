"""WWW-Authenticate parsing and token scopes (pure, no sockets)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sneaker.errors import AuthError
from sneaker.registry.challenge import (
    Challenge,
    Scope,
    covers_all,
    merge_scopes,
    parse_challenges,
    parse_scopes,
    pick_challenge,
    scopes_for_mount,
    scopes_for_pull,
    scopes_for_push,
)


def test_docker_hub_bearer_challenge() -> None:
    (c,) = parse_challenges(
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:library/ubuntu:pull,push"'
    )
    assert c.scheme == "bearer"
    assert c.realm == "https://auth.docker.io/token"
    assert c.service == "registry.docker.io"
    assert c.scopes == (Scope("repository", "library/ubuntu", ("pull", "push")),)
    assert c.token68 is None
    assert not c.is_insufficient_scope


def test_quoted_commas_and_escaped_quotes() -> None:
    (c,) = parse_challenges(r'Bearer realm="https://a/t?x=1,2", title="say \"hi\", ok"')
    assert c.realm == "https://a/t?x=1,2"
    assert c.param("title") == 'say "hi", ok'


def test_rfc7235_example_with_two_challenges() -> None:
    header = r'Newauth realm="apps", type=1, title="Login to \"apps\"", Basic realm="simple"'
    first, second = parse_challenges(header)
    assert first.scheme == "newauth"
    assert first.params == (("realm", "apps"), ("type", "1"), ("title", 'Login to "apps"'))
    assert second == Challenge("basic", (("realm", "simple"),))


def test_several_headers_and_case_insensitive_names() -> None:
    challenges = parse_challenges(['BASIC Realm="r"', 'bEaReR REALM="https://t", Service=s'])
    assert [c.scheme for c in challenges] == ["basic", "bearer"]
    assert challenges[0].realm == "r"
    assert challenges[1].param("SERVICE") == "s"


def test_bare_scheme_then_another() -> None:
    assert parse_challenges("Basic, Bearer realm=x") == (
        Challenge("basic"),
        Challenge("bearer", (("realm", "x"),)),
    )


def test_token68() -> None:
    first, second = parse_challenges("Negotiate abc+/12==, Basic realm=r")
    assert first == Challenge("negotiate", (), "abc+/12==")
    assert second.realm == "r"


def test_insufficient_scope() -> None:
    (c,) = parse_challenges(
        'Bearer realm="https://t",service="s",scope="repository:p/a:pull",'
        'error="insufficient_scope"'
    )
    assert c.is_insufficient_scope
    assert c.error == "insufficient_scope"


@pytest.mark.parametrize(
    "header",
    ["", ",,, ,", '"', "=", "Bearer realm", '===, "x', "\x00\x01", 'Bearer realm="unterminated'],
)
def test_garbage_never_raises(header: str) -> None:
    challenges = parse_challenges(header)
    assert isinstance(challenges, tuple)


def test_garbage_next_to_a_valid_challenge_keeps_the_valid_one() -> None:
    challenges = parse_challenges('@@@, Bearer realm="https://t" junk, service="s"')
    chosen = pick_challenge(challenges)
    assert chosen is not None
    assert chosen.realm == "https://t"
    assert chosen.service == "s"


def test_unterminated_quote_runs_to_end() -> None:
    (c,) = parse_challenges('Bearer realm="https://t')
    assert c.realm == "https://t"


@given(st.text(max_size=200))
def test_parser_is_total(text: str) -> None:
    parse_challenges(text)


def test_pick_prefers_bearer_with_realm() -> None:
    basic = Challenge("basic", (("realm", "r"),))
    bearer = Challenge("bearer", (("realm", "https://t"),))
    assert pick_challenge([basic, bearer]) == bearer
    assert pick_challenge([Challenge("bearer"), basic]) == basic
    assert pick_challenge([Challenge("negotiate", (), "x")]) is None


def test_str_round_trips() -> None:
    c = Challenge("bearer", (("realm", 'a"b'), ("service", "s")))
    assert parse_challenges(str(c)) == (c,)


# -- scopes ---------------------------------------------------------------------------------


def test_scope_parse_and_format() -> None:
    s = Scope.parse("repository:library/ubuntu:push,pull")
    assert s == Scope("repository", "library/ubuntu", ("pull", "push"))
    assert str(s) == "repository:library/ubuntu:pull,push"
    assert str(Scope.catalog()) == "registry:catalog:*"


def test_scope_name_may_hold_colons() -> None:
    s = Scope.parse("repository(plugin):host:5000/x:pull")
    assert s.resource_type == "repository(plugin)"
    assert s.name == "host:5000/x"
    assert s.actions == ("pull",)


@pytest.mark.parametrize("text", ["", "repository", "repository:x", ":x:pull", "repository::pull"])
def test_scope_parse_errors(text: str) -> None:
    with pytest.raises(AuthError, match="invalid token scope"):
        Scope.parse(text)


def test_parse_scopes_skips_junk() -> None:
    assert parse_scopes("repository:a:pull junk registry:catalog:*") == (
        Scope("repository", "a", ("pull",)),
        Scope("registry", "catalog", ("*",)),
    )


def test_merge_upgrades_pull_to_pull_push() -> None:
    merged = merge_scopes(scopes_for_pull("a"), scopes_for_push("a"), scopes_for_pull("b"))
    assert [str(s) for s in merged] == ["repository:a:pull,push", "repository:b:pull"]


def test_mount_needs_pull_on_source() -> None:
    assert [str(s) for s in scopes_for_mount("dst", "src")] == [
        "repository:dst:pull,push",
        "repository:src:pull",
    ]
    assert [str(s) for s in scopes_for_mount("same", "same")] == ["repository:same:pull,push"]


def test_covers() -> None:
    push = Scope.repository("a", "pull", "push")
    assert push.covers(Scope.repository("a", "pull"))
    assert not Scope.repository("a", "pull").covers(push)
    assert not push.covers(Scope.repository("b", "pull"))
    assert Scope("registry", "catalog", ("*",)).covers(Scope("registry", "catalog", ("x",)))
    assert covers_all([push, Scope.catalog()], [Scope.repository("a", "push")])
    assert not covers_all([push], [Scope.repository("c", "pull")])


def test_union_refuses_other_resources() -> None:
    with pytest.raises(ValueError, match="cannot merge"):
        Scope.repository("a", "pull").union(Scope.repository("b", "pull"))
