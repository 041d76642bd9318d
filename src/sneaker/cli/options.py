"""Options shared by several verbs (registry access, mirrors, platform, output, progress)."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ..errors import UsageError

if TYPE_CHECKING:
    from ..image.selection import PlatformRequest
    from ..registry.client import RegistryOptions
    from ..registry.mirrors import ClientFactory
    from ..settings import RegistrySettings
    from ..verbs.referrers import ReferrerOptions

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class RegistryAccess:
    """The registry options a command was given; :meth:`build` makes the
    :class:`~sneaker.registry.client.RegistryOptions` (reading the password from
    standard input then, so a command decides when that happens)."""

    ca_cert: Path | None
    insecure: bool
    plain_http: bool
    username: str | None
    password_stdin: bool
    retries: int
    low_speed_limit: int
    low_speed_time: int
    authfile: Path | None

    def build(self) -> RegistryOptions:
        return build_registry_options(
            self.ca_cert,
            self.insecure,
            self.plain_http,
            self.username,
            self.password_stdin,
            self.retries,
            self.low_speed_limit,
            self.low_speed_time,
            authfile=self.authfile,
        )


def _turn_on_request_log(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        from .verbose import enable_log

        ctx.call_on_close(enable_log())


verbose_option = click.option(
    "-v",
    "--verbose",
    is_flag=True,
    expose_value=False,
    callback=_turn_on_request_log,
    help="Log each HTTP request on stderr: method, URL (no query), status, size, time, "
    "redirects, retries and why, auth steps and mirrors; never a password or token.",
)


def registry_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """--ca-cert, --insecure, --plain-http, --username, --password-stdin, --retries,
    --low-speed-limit, --low-speed-time, --authfile, handed to the command as one
    ``registry: RegistryAccess`` argument; and -v/--verbose, which turns the request log on."""

    @functools.wraps(func)
    def with_registry(*args: Any, **kwargs: Any) -> Any:
        access = RegistryAccess(*(kwargs.pop(field.name) for field in fields(RegistryAccess)))
        return func(*args, registry=access, **kwargs)

    decorators = [
        click.option(
            "--ca-cert",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="Trust this CA certificate (PEM) for the registry's TLS.",
        ),
        click.option(
            "--insecure",
            is_flag=True,
            help="Skip TLS certificate verification (dangerous; prints a warning).",
        ),
        click.option(
            "--plain-http",
            is_flag=True,
            help="Allow plain HTTP to registries that are not on loopback.",
        ),
        click.option("--username", "-u", help="Registry user name (instead of config.json)."),
        click.option(
            "--password-stdin",
            is_flag=True,
            help="Read the password or token for --username from standard input.",
        ),
        click.option(
            "--retries",
            type=click.IntRange(0, 50),
            default=5,
            show_default=True,
            help=(
                "Retries for timeouts, resets, 429 and 500/502/503/504 answers (backoff "
                "with jitter; 429 and 503 honour Retry-After). A refused connection is "
                "retried as often within about a second; a host name that does not resolve "
                "is not retried."
            ),
        ),
        click.option(
            "--low-speed-limit",
            type=click.IntRange(0),
            default=1024,
            show_default=True,
            metavar="BYTES",
            help="A response arriving slower than BYTES per second on average over "
            "--low-speed-time is abandoned and retried like a cut connection (as curl's "
            "option); 0 turns it off.",
        ),
        click.option(
            "--low-speed-time",
            type=click.IntRange(1),
            default=30,
            show_default=True,
            metavar="SECONDS",
            help="How long a response may stay below --low-speed-limit (or silent).",
        ),
        authfile_option(
            "Read registry credentials from this containers auth.json first (as podman's and "
            "skopeo's --authfile; default: $REGISTRY_AUTH_FILE, else their login file), then "
            "~/.config/containers/auth.json and docker's config.json."
        ),
        verbose_option,
    ]
    command: Callable[..., Any] = with_registry
    for decorator in reversed(decorators):
        command = decorator(command)
    return command


@dataclass(frozen=True)
class ReferrerChoice:
    """``--referrers`` and its bounds as given (None: the default)."""

    wanted: bool
    types: tuple[str, ...]
    depth: int | None
    limit: int | None

    def build(self, marked: Collection[str] = ()) -> ReferrerOptions | None:
        """Whose referrers to carry: every image's with ``--referrers``, else those of the
        images an images file marks (``marked``: their normalised names); None: nobody's."""
        from ..transfer.referrers import DEFAULT_DEPTH, DEFAULT_LIMIT, ReferrerPolicy
        from ..verbs.referrers import ReferrerOptions

        if not self.wanted and not marked:
            if self.types or self.depth is not None or self.limit is not None:
                raise UsageError(
                    "--referrers-type, --referrers-depth and --referrers-max apply with "
                    "--referrers",
                    hint="add --referrers (or mark images with --referrers in an images file)",
                )
            return None
        policy = ReferrerPolicy(
            depth=DEFAULT_DEPTH if self.depth is None else self.depth,
            limit=DEFAULT_LIMIT if self.limit is None else self.limit,
            types=frozenset(self.types),
        )
        return ReferrerOptions(policy, None if self.wanted else frozenset(marked))


def referrer_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """--referrers, --referrers-type, --referrers-depth, --referrers-max, handed to the
    command as one ``referrers: ReferrerChoice`` argument."""

    @functools.wraps(func)
    def with_referrers(*args: Any, **kwargs: Any) -> Any:
        given = (kwargs.pop(f"referrers_{f.name}") for f in fields(ReferrerChoice))
        choice = ReferrerChoice(*given)
        return func(*args, referrers=choice, **kwargs)

    decorators = [
        click.option(
            "--referrers",
            "referrers_wanted",
            is_flag=True,
            help="Also carry what refers to each image (and each platform's manifest): "
            "OCI 1.1 referrers (referrers API, else the sha256-<hex> tag) and cosign's "
            "sha256-<hex>.sig/.att/.sbom tags, and theirs in turn. Needs --format oci "
            "(its default then).",
        ),
        click.option(
            "--referrers-type",
            "referrers_types",
            multiple=True,
            metavar="TYPE",
            help="Keep only referrers of this artifactType (cosign's tag attachments count as "
            "application/vnd.dev.cosign.artifact.{sig,att,sbom}.v1+json). Repeatable.",
        ),
        click.option(
            "--referrers-depth",
            "referrers_depth",
            type=click.IntRange(1, 16),
            default=None,
            metavar="N",
            help="Follow referrers of referrers N levels down.  [default: 4]",
        ),
        click.option(
            "--referrers-max",
            "referrers_limit",
            type=click.IntRange(1, 100_000),
            default=None,
            metavar="N",
            help="Take at most N referrers per image.  [default: 256]",
        ),
    ]
    command: Callable[..., Any] = with_referrers
    for decorator in reversed(decorators):
        command = decorator(command)
    return command


def build_registry_options(
    ca_cert: Path | None,
    insecure: bool,
    plain_http: bool,
    username: str | None,
    password_stdin: bool,
    retries: int = 5,
    low_speed_limit: int = 1024,
    low_speed_time: int = 30,
    *,
    authfile: Path | None = None,
) -> RegistryOptions:
    password = None
    if password_stdin:
        if not username:
            raise UsageError("--password-stdin needs --username")
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise UsageError("--password-stdin: nothing was read from standard input")
    elif username:
        raise UsageError(
            "--username needs --password-stdin",
            hint='pipe the password: echo "$TOKEN" | sneaker ... -u USER --password-stdin',
        )
    from .. import __version__
    from ..registry.client import RegistryOptions
    from ..registry.lowspeed import LowSpeedLimit

    # --insecure warns once per registry, when its client is made (sneaker.registry.tls)
    return RegistryOptions(
        ca_cert=ca_cert,
        insecure=insecure,
        insecure_source="--insecure" if insecure else "",
        plain_http=plain_http,
        username=username,
        password=password,
        retries=retries,
        low_speed=LowSpeedLimit(low_speed_limit, float(low_speed_time)),
        authfile=authfile,
        user_agent=f"sneaker/{__version__}",
    )


def authfile_option(help: str) -> Callable[[F], F]:
    """``--authfile FILE``: a containers-auth.json(5) file, as podman and skopeo name it."""
    return click.option(
        "--authfile",
        type=click.Path(dir_okay=False, path_type=Path),
        metavar="FILE",
        help=help,
    )


mirror_option = click.option(
    "--mirror",
    "mirrors",
    multiple=True,
    metavar="[SOURCE=]MIRROR",
    help="Try MIRROR (host[:port][/path], http:// for plain HTTP) before the registry: "
    "for Docker Hub, or for SOURCE (a registry or registry/namespace). Repeatable; "
    "tried before registries.conf and daemon.json mirrors.",
)


def load_registry_settings(mirrors: Sequence[str], plain_http: bool) -> RegistrySettings:
    """registries.conf, daemon.json and ``--mirror``, read the same way for every verb.

    Warnings about the files (unknown keys, ...) go to standard error.
    """
    from ..settings import load_settings

    return load_settings(
        mirrors=mirrors,
        plain_http=plain_http,
        warn=lambda message: click.echo(f"warning: {message}", err=True),
    )


def open_client_factory(options: RegistryOptions, mirrors: Sequence[str]) -> ClientFactory:
    """The clients a reading verb uses: mirrors, insecure and blocked registries applied.

    Call it only once the verb knows it will talk to a registry (a local archive needs
    no settings); close the factory (``with``) when done.
    """
    from ..registry.mirrors import make_client_factory

    return make_client_factory(load_registry_settings(mirrors, options.plain_http), options)


def parse_platform_option(value: str | None) -> PlatformRequest:
    from ..image.platform import parse_platform_list
    from ..image.selection import PlatformRequest

    if not value:
        return PlatformRequest()
    if value.strip().lower() == "all":
        return PlatformRequest(all=True)
    return PlatformRequest(platforms=tuple(parse_platform_list(value)))


def layer_limit_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """--max-layer-size and --max-unpacked-size (unpack, verify --deep), handed to the
    command as one ``limits: LayerLimits`` argument."""

    @functools.wraps(func)
    def with_limits(*args: Any, **kwargs: Any) -> Any:
        from ..layers.apply import DEFAULT_LIMITS

        layer = parse_size_option(kwargs.pop("max_layer_size"), "--max-layer-size")
        total = parse_size_option(kwargs.pop("max_unpacked_size"), "--max-unpacked-size")
        return func(*args, limits=DEFAULT_LIMITS.with_options(layer, total), **kwargs)

    sizes = "SIZE as for --split: bytes, or with K/M/G/T (powers of 1024) or KB/MB/GB/TB"
    command = click.option(
        "--max-unpacked-size",
        metavar="SIZE",
        help=f"Refuse an image whose layers write more than SIZE in all (default 64G; {sizes}).",
    )(with_limits)
    return click.option(
        "--max-layer-size",
        metavar="SIZE",
        help="Refuse a layer that decompresses to, or whose files (sparse ones at their "
        "full size) add up to, more than SIZE (default: 64 times its compressed size, "
        "at least 1G, at most 64G).",
    )(command)


def parse_size_option(value: str | None, option: str = "--split") -> int | None:
    """A SIZE option (``--split``'s grammar), None when not given."""
    if not value:
        return None
    from ..archive.split import parse_size

    try:
        return parse_size(value)
    except UsageError as exc:
        exc.message = f"{option}: {exc.message}"
        raise


def parse_split_option(value: str | None) -> int | None:
    return parse_size_option(value, "--split")


images_file_option = click.option(
    "-f",
    "--images-file",
    "images_files",
    multiple=True,
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    help="Read references from FILE, one a line ('#' comments; 'REF --referrers' carries "
    "that image's referrers too); '-' is standard input.",
)
from_option = click.option(
    "--from",
    "from_files",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Take the image: references of a docker-compose file or Kubernetes YAML, or the "
    "Images and OCI Charts of a Hauler manifest.",
)
platform_option = click.option(
    "--platform",
    metavar="OS/ARCH[/VARIANT]|all|LIST",
    help="Platform to pull (default: this machine's); 'all' keeps the whole index; "
    "a comma-separated list keeps those.",
)
quiet_option = click.option("-q", "--quiet", is_flag=True, help="No progress output.")
json_option = click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
split_option = click.option(
    "--split",
    metavar="SIZE",
    help="Write the archive in parts of at most SIZE: bytes, or with K/M/G (powers of 1024) "
    "or KB/MB/GB; or a medium: fat32 (4 GiB less one byte), cd (700M), dvd, bd.",
)


def summary_to_stderr(output: str | None, as_json: bool) -> bool:
    """Whether a writing command's summary goes to standard error: when the archive goes to
    standard output (``-o -``), which ``--json`` then cannot use (refused)."""
    if output != "-":
        return False
    if as_json:
        raise UsageError(
            "--json and -o - both write to standard output",
            hint="write the archive to a file with -o FILE, or leave out --json",
        )
    return True
