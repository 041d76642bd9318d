"""Registry settings: registries.conf, daemon.json, --mirror; endpoint resolution. No sockets."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sneaker.errors import ConfigError, RegistryBlocked, UsageError
from sneaker.registry.mirrors import endpoint_options
from sneaker.settings import RegistrySettings, load_settings, parse_mirror_flag
from sneaker.settings.daemon_json import (
    ENV_DAEMON_JSON,
    default_daemon_json_file,
    load_daemon_json,
    parse_daemon_json,
)
from sneaker.settings.endpoints import Endpoint
from sneaker.settings.registries_conf import (
    ENV_REGISTRIES_CONF,
    default_registries_conf_files,
    load_registries_conf,
)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def settings_from(
    tmp_path: Path,
    conf: str | None = None,
    daemon: str | None = None,
    *,
    mirrors: tuple[str, ...] = (),
    plain_http: bool = False,
) -> RegistrySettings:
    conf_files = [write(tmp_path / "registries.conf", conf)] if conf is not None else []
    daemon_files = [write(tmp_path / "daemon.json", daemon)] if daemon is not None else []
    return load_settings(
        registries_conf=conf_files,
        daemon_json=daemon_files,
        mirrors=mirrors,
        plain_http=plain_http,
        warn=lambda _m: None,
    )


def hosts(resolved_endpoints: tuple[Endpoint, ...], repository: str) -> list[str]:
    return [e.describe(repository) for e in resolved_endpoints]


# -- registries.conf -----------------------------------------------------------------------

EXAMPLE = """\
unqualified-search-registries = ["example.com"]

[[registry]]
prefix = "example.com/foo"
insecure = false
blocked = false
location = "internal-registry.example.net/bar"

[[registry.mirror]]
location = "mirror-0.local/mirror-for-foo"

[[registry.mirror]]
location = "mirror-1.local:5000/mirrors/foo"
insecure = true

[[registry]]
location = "example.com"
"""


def test_prefix_location_and_mirrors_rewrite_the_repository(tmp_path: Path) -> None:
    settings = settings_from(tmp_path, EXAMPLE)
    resolved = settings.for_registry("example.com/foo/image")
    assert hosts(resolved.endpoints, "foo/image") == [
        "mirror-0.local/mirror-for-foo/image",
        "mirror-1.local:5000/mirrors/foo/image",
        "internal-registry.example.net/bar/image",
    ]
    assert [e.mirror for e in resolved.endpoints] == [True, True, False]
    assert [e.insecure for e in resolved.endpoints] == [False, True, False]
    # outside example.com/foo the shorter prefix (location only) applies: no rewrite
    other = settings.for_registry("example.com/other/image")
    assert hosts(other.endpoints, "other/image") == ["example.com/other/image"]
    # a repository that merely starts with the same letters does not match
    assert hosts(settings.for_registry("example.com/foobar").endpoints, "foobar") == [
        "example.com/foobar"
    ]


def test_unqualified_search_registries_is_a_note_not_a_warning(tmp_path: Path) -> None:
    settings = settings_from(tmp_path, EXAMPLE)
    assert settings.warnings == ()
    assert len(settings.notes) == 1
    assert "unqualified-search-registries is ignored" in settings.notes[0]
    assert f"{tmp_path / 'registries.conf'}, line 1:" in settings.notes[0]


def test_longest_prefix_wins_and_wildcards_match_subdomains(tmp_path: Path) -> None:
    conf = """\
[[registry]]
prefix = "*.example.com"
insecure = true

[[registry]]
prefix = "a.example.com/team"
location = "a.example.com/team"
blocked = true
"""
    settings = settings_from(tmp_path, conf)
    deep = settings.for_registry("x.y.example.com:5000/app")
    assert deep.origin.insecure
    assert deep.origin.registry == "x.y.example.com:5000"
    assert settings.for_registry("a.example.com/team/app").blocked_by is not None
    assert settings.for_registry("a.example.com/other").blocked_by is None
    assert not settings.for_registry("example.com/app").origin.insecure
    assert not settings.for_registry("badexample.com/app").origin.insecure


def test_docker_hub_names_and_library_paths(tmp_path: Path) -> None:
    conf = """\
[[registry]]
prefix = "index.docker.io/library"
location = "hub-mirror.local/library"
"""
    settings = settings_from(tmp_path, conf)
    resolved = settings.for_registry("docker.io/library/ubuntu")
    assert hosts(resolved.endpoints, "library/ubuntu") == ["hub-mirror.local/library/ubuntu"]
    assert hosts(settings.for_registry("docker.io/bitnami/redis").endpoints, "bitnami/redis") == [
        "docker.io/bitnami/redis"
    ]


def test_pull_from_mirror_and_mirror_by_digest_only(tmp_path: Path) -> None:
    conf = """\
[[registry]]
location = "a.example"
[[registry.mirror]]
location = "digests.local"
pull-from-mirror = "digest-only"
[[registry.mirror]]
location = "tags.local"
pull-from-mirror = "tag-only"

[[registry]]
location = "b.example"
mirror-by-digest-only = true
[[registry.mirror]]
location = "b-mirror.local"
"""
    settings = settings_from(tmp_path, conf)
    digest = "sha256:" + "0" * 64
    a = settings.for_registry("a.example/app")
    assert hosts(a.for_identifier("1.0"), "app") == ["tags.local/app", "a.example/app"]
    assert hosts(a.for_identifier(digest), "app") == ["digests.local/app", "a.example/app"]
    # blobs are content-addressed: every mirror may serve them
    assert len(a.for_identifier(None)) == 3
    b = settings.for_registry("b.example/app")
    assert hosts(b.for_identifier("latest"), "app") == ["b.example/app"]
    assert hosts(b.for_identifier(digest), "app") == ["b-mirror.local/app", "b.example/app"]


def test_unknown_keys_warn_with_file_and_line(tmp_path: Path) -> None:
    conf = """\
colour = "blue"

[[registry]]
location = "a.example"
insecure = true
speed = "fast"

[[registry.mirror]]
location = "m.local"
weight = 3
"""
    path = write(tmp_path / "registries.conf", conf)
    seen: list[str] = []
    settings = load_settings(registries_conf=[path], daemon_json=[], warn=seen.append)
    assert seen == [
        f"{path}, line 1: unknown key 'colour' (ignored)",
        f"{path}, line 6: unknown key 'speed' in [[registry]] (ignored)",
        f"{path}, line 10: unknown key 'weight' in [[registry.mirror]] (ignored)",
    ]
    # the rest still applies
    resolved = settings.for_registry("a.example/app")
    assert resolved.origin.insecure
    assert hosts(resolved.mirrors, "app") == ["m.local/app"]


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ('[[registry]]\nlocation = "a.example"\ninsecure = tru\n', 3, "Invalid value"),
        ('[[registry]]\nlocation = "a.example\n', 2, "Illegal character"),
        ('[[registry]]\nlocation = "a"\nlocation = "b"\n', 3, "Cannot overwrite a value"),
    ],
)
def test_bad_toml_names_file_and_line(tmp_path: Path, text: str, line: int, reason: str) -> None:
    path = write(tmp_path / "registries.conf", text)
    with pytest.raises(ConfigError) as caught:
        load_registries_conf([path])
    message = caught.value.message
    assert message.startswith(f"{path}, line {line}: invalid TOML: {reason}"), message
    assert caught.value.exit_code == 3


def test_wrong_types_and_bad_values_name_file_and_line(tmp_path: Path) -> None:
    path = write(
        tmp_path / "registries.conf",
        '[[registry]]\nlocation = "a.example"\n\n[[registry]]\nlocation = "b.example"\n'
        'insecure = "yes"\n',
    )
    with pytest.raises(ConfigError, match=re.escape(f"{path}, line 4: insecure must be true")):
        load_registries_conf([path])
    path.write_text('[[registry]]\nlocation = "https://a.example"\n')
    with pytest.raises(ConfigError, match="must not contain a scheme"):
        load_registries_conf([path])
    path.write_text('[[registry]]\nlocation = "a.example"\n[[registry.mirror]]\ninsecure = true\n')
    with pytest.raises(
        ConfigError, match=re.escape(f"{path}, line 3: a [[registry.mirror]] needs")
    ):
        load_registries_conf([path])
    path.write_text('[[registry]]\nlocation = "a.example"\n[[registry]]\nprefix = "a.example"\n')
    with pytest.raises(
        ConfigError, match=re.escape(f"{path}, line 3: prefix 'a.example' is already")
    ):
        load_registries_conf([path])
    path.write_text('[[registry]]\nprefix = "*.example.com/foo"\n')
    with pytest.raises(ConfigError, match="wildcard"):
        load_registries_conf([path])


def test_version_1_lists(tmp_path: Path) -> None:
    conf = """\
[registries.search]
registries = ["docker.io"]
[registries.insecure]
registries = ["plain.local:5000"]
[registries.block]
registries = ["bad.example", "plain.local:5000"]
"""
    settings = settings_from(tmp_path, conf)
    plain = settings.for_registry("plain.local:5000/app")
    assert plain.origin.insecure
    assert plain.blocked_by == f"{tmp_path / 'registries.conf'}, line 5"
    assert settings.for_registry("bad.example/x").blocked_by is not None
    assert settings.for_registry("docker.io/library/x").blocked_by is None
    path = write(tmp_path / "mixed.conf", conf + '[[registry]]\nlocation = "x.example"\n')
    with pytest.raises(ConfigError, match="mixes the version 1 format"):
        load_registries_conf([path])


def test_drop_ins_override_by_prefix_and_must_be_version_2(tmp_path: Path) -> None:
    main = write(
        tmp_path / "registries.conf", '[[registry]]\nlocation = "a.example"\nblocked = true\n'
    )
    dropin = write(
        tmp_path / "registries.conf.d" / "10-a.conf",
        '[[registry]]\nlocation = "a.example"\ninsecure = true\n',
    )
    conf = load_registries_conf([main, dropin])
    entry = conf.find("a.example")
    assert entry is not None
    assert entry.insecure
    assert not entry.blocked
    old = write(
        tmp_path / "registries.conf.d" / "20-old.conf",
        '[registries.insecure]\nregistries = ["b.example"]\n',
    )
    with pytest.raises(ConfigError, match="drop-in must use the version 2 format"):
        load_registries_conf([main, old])


def test_which_registries_conf_files_are_read(tmp_path: Path) -> None:
    home = tmp_path / "home"
    user_dir = home / ".config/containers/registries.conf.d"
    write(user_dir / "b.conf", "")
    write(user_dir / "a.conf", "")
    write(user_dir / "ignored.txt", "")
    override = write(tmp_path / "custom.conf", "")
    found = default_registries_conf_files({ENV_REGISTRIES_CONF: str(override)}, home)
    assert found[0] == override
    assert found[-2:] == [user_dir / "a.conf", user_dir / "b.conf"]
    # the user's own main file: only the user's drop-ins, never the system's
    user_file = write(home / ".config/containers/registries.conf", "")
    assert default_registries_conf_files({}, home) == [
        user_file,
        user_dir / "a.conf",
        user_dir / "b.conf",
    ]


# -- daemon.json ---------------------------------------------------------------------------

DAEMON = """\
{
  "data-root": "/var/lib/docker",
  "registry-mirrors": ["https://hub-mirror.local", "http://10.1.2.3:5000/"],
  "insecure-registries": ["plain.local:5000", "192.168.0.0/16", "http://old.local"],
  "log-driver": "json-file"
}
"""


def test_daemon_json_mirrors_apply_to_docker_hub_only(tmp_path: Path) -> None:
    settings = settings_from(tmp_path, daemon=DAEMON)
    hub = settings.for_registry("docker.io/library/alpine")
    assert hosts(hub.endpoints, "library/alpine") == [
        "hub-mirror.local/library/alpine",
        "10.1.2.3:5000/library/alpine",
        "docker.io/library/alpine",
    ]
    assert [e.plain_http for e in hub.endpoints] == [False, True, False]
    assert settings.for_registry("ghcr.io/org/app").mirrors == ()
    assert settings.for_registry("index.docker.io/library/alpine").mirrors == hub.mirrors


def test_daemon_json_insecure_hosts_and_networks(tmp_path: Path) -> None:
    settings = settings_from(tmp_path, daemon=DAEMON)
    assert settings.for_registry("plain.local:5000/app").origin.insecure
    assert not settings.for_registry("plain.local:5001/app").origin.insecure
    assert settings.for_registry("192.168.7.8:5000/app").origin.insecure
    assert not settings.for_registry("10.0.0.1:5000/app").origin.insecure
    assert settings.for_registry("old.local/app").origin.insecure
    assert settings.warnings == (
        f"{tmp_path / 'daemon.json'}, line 4: insecure registry 'http://old.local' should "
        "not contain 'http://'; it was removed",
    )


def test_daemon_json_unknown_keys_warn_known_docker_keys_do_not(tmp_path: Path) -> None:
    path = write(tmp_path / "daemon.json", '{\n  "debug": true,\n  "mirrorz": []\n}\n')
    parsed = load_daemon_json([path])
    assert parsed.warnings == (f"{path}, line 3: unknown key 'mirrorz' (ignored)",)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '{\n  "registry-mirrors": ["a",]\n}\n',
            (
                "line 2: invalid JSON: Expecting value",  # Python 3.10 to 3.12
                "line 2: invalid JSON: Illegal trailing comma before end of array",  # 3.13
            ),
        ),
        ('{\n  "debug": true\n  "x": 1\n}\n', "line 3: invalid JSON: Expecting ',' delimiter"),
        ('{\n\n  "registry-mirrors": "https://m"\n}', "line 3: registry-mirrors must be an array"),
        ('{"registry-mirrors": ["https://m/v2/"]}', "line 1: registry mirror 'https://m/v2/' must"),
        ('{"registry-mirrors": ["m.local"]}', "must be an http:// or https:// URL"),
        ('{"insecure-registries": ["ftp://x"]}', "must not contain '://'"),
        ('{"insecure-registries": ["10.0.0.0/99"]}', "neither host[:port] nor a CIDR"),
    ],
)
def test_daemon_json_errors_name_file_and_line(
    tmp_path: Path, text: str, expected: str | tuple[str, ...]
) -> None:
    path = write(tmp_path / "daemon.json", text)
    with pytest.raises(ConfigError) as caught:
        load_daemon_json([path])
    assert caught.value.message.startswith(str(path))
    alternatives = (expected,) if isinstance(expected, str) else expected
    assert any(text in caught.value.message for text in alternatives), caught.value.message


def test_which_daemon_json_is_read(tmp_path: Path) -> None:
    chosen = write(tmp_path / "chosen.json", "{}")
    assert default_daemon_json_file({ENV_DAEMON_JSON: str(chosen)}) == chosen
    assert default_daemon_json_file({ENV_DAEMON_JSON: ""}) is None
    rootless = write(tmp_path / "xdg/docker/daemon.json", "{}")
    env = {"XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    assert default_daemon_json_file(env, tmp_path, euid=1000) == rootless
    assert default_daemon_json_file(env, tmp_path, euid=0) != rootless
    assert parse_daemon_json("", "empty.json").mirrors == ()


# -- flags, merging, blocking --------------------------------------------------------------


def test_mirror_flag_forms() -> None:
    hub = parse_mirror_flag("mirror.local:5000")
    assert (hub.source_host, hub.host, hub.path, hub.plain_http) == (
        "docker.io",
        "mirror.local:5000",
        "",
        False,
    )
    sourced = parse_mirror_flag("ghcr.io/org=http://10.0.0.5:5000/ghcr/")
    assert (sourced.source_host, sourced.source_path, sourced.host, sourced.path) == (
        "ghcr.io",
        "org",
        "10.0.0.5:5000",
        "ghcr",
    )
    assert sourced.plain_http
    assert parse_mirror_flag("https://index.docker.io/v1/=m.local").source_host == "docker.io"
    for bad in ("", "=m.local", "ghcr.io=", "ghcr.io=https://", "bad host=m.local"):
        with pytest.raises(UsageError):
            parse_mirror_flag(bad)


def test_order_flags_then_registries_conf_then_daemon_json(tmp_path: Path) -> None:
    conf = '[[registry]]\nlocation = "docker.io"\n[[registry.mirror]]\nlocation = "conf.local"\n'
    daemon = '{"registry-mirrors": ["https://daemon.local", "https://conf.local"],\n'
    daemon += ' "insecure-registries": ["flag.local"]}'
    settings = settings_from(tmp_path, conf, daemon, mirrors=("flag.local", "ghcr.io=other.local"))
    resolved = settings.for_registry("docker.io/library/busybox")
    assert [e.registry for e in resolved.endpoints] == [
        "flag.local",
        "conf.local",
        "daemon.local",
        "docker.io",
    ]
    assert resolved.endpoints[0].insecure  # daemon.json's insecure-registries names it
    assert resolved.endpoints[0].source == "--mirror flag.local"
    assert settings.has_rules_for("docker.io")
    assert settings.has_rules_for("ghcr.io")
    assert not settings.has_rules_for("quay.io")


def test_plain_http_flag_applies_to_every_endpoint(tmp_path: Path) -> None:
    settings = settings_from(tmp_path, mirrors=("m.local",), plain_http=True)
    assert all(e.plain_http for e in settings.for_registry("docker.io/library/x").endpoints)


def test_blocked_registry_is_refused_naming_the_file(tmp_path: Path) -> None:
    conf = '[[registry]]\nlocation = "ok.example"\n\n[[registry]]\nprefix = "evil.example"\n'
    conf += "blocked = true\n"
    settings = settings_from(tmp_path, conf)
    settings.check_blocked("ok.example/app")
    with pytest.raises(RegistryBlocked) as caught:
        settings.check_blocked("evil.example/app")
    assert caught.value.message == (
        f"evil.example/app is blocked by {tmp_path / 'registries.conf'}, line 4 (blocked = true)"
    )
    assert caught.value.exit_code == 3


def test_no_files_no_rules() -> None:
    settings = load_settings(registries_conf=[], daemon_json=[])
    resolved = settings.for_registry("docker.io/library/alpine")
    assert resolved.endpoints == (Endpoint("docker.io"),)
    assert settings.files == ()


def test_endpoint_options_keep_explicit_credentials_for_the_named_registry() -> None:
    from sneaker.registry.options import RegistryOptions

    base = RegistryOptions(username="me", password="secret", retries=5)
    origin = endpoint_options(Endpoint("ghcr.io"), base, "ghcr.io")
    assert (origin.username, origin.password, origin.retries) == ("me", "secret", 5)
    mirror = endpoint_options(Endpoint("m.local", mirror=True, insecure=True), base, "ghcr.io")
    assert (mirror.username, mirror.password, mirror.retries, mirror.insecure) == (
        None,
        None,
        1,
        True,
    )
    assert endpoint_options(Endpoint("m.local", plain_http=True), base, "ghcr.io").plain_http
