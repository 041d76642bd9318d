"""Property-based fuzzing of the parsers that meet untrusted text: references, digests,
``WWW-Authenticate`` challenges, token scopes, manifests and indexes.

Properties: on any input a parser returns or raises a :class:`SneakerError`
subclass (never another exception); what the parsers produce formats back to
text that parses to the same value. Bounded runs here (``EXAMPLES`` each,
derandomized under CI by the ``ci`` profile in ``tests/conftest.py``);
``SNEAKER_FUZZ_EXAMPLES=20000`` makes a long run (see docs/security.md).
"""

from __future__ import annotations

import json
import os
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sneaker.errors import (
    AuthError,
    InvalidDigest,
    InvalidReference,
    ManifestInvalid,
    SneakerError,
)
from sneaker.image import mediatypes as mt
from sneaker.image.digest import Digest
from sneaker.image.model import MAX_MANIFEST_BYTES, Descriptor, Index, Manifest, parse_manifest
from sneaker.image.reference import parse_reference
from sneaker.registry.challenge import Challenge, Scope, parse_challenges, pick_challenge

#: examples per property (raise with SNEAKER_FUZZ_EXAMPLES for a long run)
EXAMPLES = int(os.environ.get("SNEAKER_FUZZ_EXAMPLES", "100"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=timedelta(seconds=1),
    suppress_health_check=[HealthCheck.too_slow],
)

# -- strategies -------------------------------------------------------------------------

#: pieces that exercise every branch of the reference grammar, glued at random
_REF_PIECES = st.sampled_from(
    [
        "a", "Z", "0", ".", "_", "__", "-", "--", ":", "/", "@", "localhost", "docker.io",
        "index.docker.io", "library", "example.com", ":5000", "[::1]", "sha256:", "sha512:",
        "md5:", "a" * 64, "A" * 64, "0" * 128, " ", "\t", "\n", "\x00", "é", "..", "%",
    ]
)  # fmt: skip
_ref_text = st.one_of(st.text(max_size=120), st.lists(_REF_PIECES, max_size=24).map("".join))

_component = st.from_regex(r"[a-z0-9]{1,6}(?:(?:[._]|__|-{1,2})[a-z0-9]{1,6}){0,2}", fullmatch=True)
_host_label = st.from_regex(r"[a-z0-9](?:[a-z0-9-]{0,6}[a-z0-9])?", fullmatch=True)
_registry = st.one_of(
    st.none(),  # Docker Hub, implied
    st.sampled_from(["docker.io", "index.docker.io", "localhost", "ghcr.io", "[::1]:5000"]),
    st.tuples(
        st.lists(_host_label, min_size=2, max_size=3).map(".".join),
        st.none() | st.integers(1, 65535),
    ).map(lambda hp: hp[0] if hp[1] is None else f"{hp[0]}:{hp[1]}"),
    st.tuples(_host_label, st.integers(1, 65535)).map(lambda hp: f"{hp[0]}:{hp[1]}"),
)
_tag = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}", fullmatch=True)
_hex64 = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)
_digest_text = st.one_of(
    _hex64.map(lambda h: f"sha256:{h}"),
    st.text(alphabet="0123456789abcdef", min_size=128, max_size=128).map(lambda h: f"sha512:{h}"),
)


@st.composite
def _valid_reference(draw: st.DrawFn) -> str:
    registry = draw(_registry)
    components = draw(st.lists(_component, min_size=1, max_size=3))
    if registry is None and len(components) > 1 and _looks_like_host(components[0]):
        registry = "docker.io"  # else the first component is read as a registry, as docker does
    path = "/".join(components)
    text = f"{registry}/{path}" if registry else path
    if draw(st.booleans()):
        text += f":{draw(_tag)}"
    if draw(st.booleans()):
        text += f"@{draw(_digest_text)}"
    return text


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "schemaVersion",
                    "mediaType",
                    "manifests",
                    "layers",
                    "config",
                    "digest",
                    "size",
                    "urls",
                    "platform",
                    "annotations",
                    "artifactType",
                    "subject",
                    "os",
                    "architecture",
                    "variant",
                    "os.features",
                    "os.version",
                ]
            )
            | st.text(max_size=6),
            inner,
            max_size=6,
        )
    ),
    max_leaves=16,
)


@st.composite
def _descriptor(draw: st.DrawFn, fuzz: bool) -> dict[str, Any]:
    desc: dict[str, Any] = {
        "mediaType": draw(st.sampled_from([mt.OCI_LAYER_GZIP, mt.DOCKER_LAYER, mt.OCI_MANIFEST])),
        "digest": draw(_digest_text),
        "size": draw(st.integers(0, 2**40)),
    }
    if draw(st.booleans()):
        desc["platform"] = {
            "os": draw(st.sampled_from(["linux", "windows"])),
            "architecture": draw(st.sampled_from(["amd64", "arm64", "arm"])),
        }
    if draw(st.booleans()):
        desc["annotations"] = draw(
            st.dictionaries(st.text(max_size=8), st.text(max_size=8), min_size=1)
        )
    if fuzz:
        # any field may be replaced by any JSON value
        for key in draw(st.lists(st.sampled_from([*desc, "urls", "platform"]), max_size=2)):
            desc[key] = draw(_json)
    return desc


@st.composite
def _manifest_doc(draw: st.DrawFn, fuzz: bool) -> dict[str, Any]:
    if draw(st.booleans()):
        doc: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": draw(st.sampled_from([mt.OCI_INDEX, mt.DOCKER_MANIFEST_LIST])),
            "manifests": draw(st.lists(_descriptor(fuzz), max_size=4)),
        }
    else:
        doc = {
            "schemaVersion": 2,
            "mediaType": draw(st.sampled_from([mt.OCI_MANIFEST, mt.DOCKER_MANIFEST])),
            "config": draw(_descriptor(fuzz)),
            "layers": draw(st.lists(_descriptor(fuzz), max_size=4)),
        }
    if fuzz:
        for key in draw(st.lists(st.sampled_from([*doc, "annotations"]), max_size=2)):
            doc[key] = draw(_json)
    return doc


def _looks_like_host(component: str) -> bool:
    return "." in component or ":" in component or component == "localhost"


def _only_sneaker_errors(call: Any, *args: Any) -> Any:
    """Run ``call``; a SneakerError is a fine answer, anything else fails the property."""
    try:
        return call(*args)
    except SneakerError:
        return None


# -- references ---------------------------------------------------------------------------


@FUZZ
@given(_ref_text)
def test_fuzz_reference_parser_raises_only_invalid_reference(text: str) -> None:
    try:
        ref = parse_reference(text)
    except InvalidReference:
        return
    assert parse_reference(str(ref)) == ref


@FUZZ
@given(_valid_reference())
def test_fuzz_reference_round_trips(text: str) -> None:
    ref = parse_reference(text)
    assert parse_reference(str(ref)) == ref
    namespace = ref.repository.split("/")[0]
    if not (ref.registry == "docker.io" and _looks_like_host(namespace)):
        # docker's familiar form of docker.io/a.b/c is a.b/c, which names registry a.b;
        # Docker Hub namespaces never look like hosts, so only made-up names differ
        assert parse_reference(ref.familiar) == ref
    assert parse_reference(str(ref), default_tag=None) == ref
    # normalised once is normalised for good
    assert str(parse_reference(str(ref))) == str(ref)


# -- digests ------------------------------------------------------------------------------


@FUZZ
@given(st.one_of(st.text(max_size=140), _digest_text, _ref_text))
def test_fuzz_digest_parser_raises_only_invalid_digest(text: str) -> None:
    try:
        digest = Digest.parse(text)
    except InvalidDigest:
        return
    assert digest.algorithm in ("sha256", "sha512")
    assert str(digest) == text
    assert Digest.parse(str(digest)) == digest


# -- challenges and scopes ----------------------------------------------------------------

_token = st.text(
    alphabet="!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=10
)
_header_pieces = st.sampled_from(
    ['Bearer', 'Basic', 'realm', '=', '"', '\\', ',', ' ', 'scope="repository:a:pull"',
     'realm="https://auth/token"', 'service=x', 'abc==', '\t', '\x00', 'é', ';']
)  # fmt: skip
_header_text = st.one_of(st.text(max_size=200), st.lists(_header_pieces, max_size=30).map("".join))


@FUZZ
@given(st.lists(_header_text, max_size=3))
def test_fuzz_challenge_parser_is_total(headers: list[str]) -> None:
    challenges = parse_challenges(headers)
    assert all(c.scheme == c.scheme.lower() for c in challenges)
    chosen = pick_challenge(challenges)
    assert chosen is None or chosen.scheme in ("bearer", "basic")
    for challenge in challenges:
        _only_sneaker_errors(lambda c=challenge: c.scopes)


@FUZZ
@given(
    _token,
    st.lists(st.tuples(_token, st.text(max_size=30)), min_size=1, max_size=4),
)
def test_fuzz_challenge_round_trips(scheme: str, params: list[tuple[str, str]]) -> None:
    challenge = Challenge(scheme, tuple(params))
    assert parse_challenges(str(challenge)) == (challenge,)
    # two challenges in one header come back as two
    both = parse_challenges(f"{challenge}, {challenge}")
    assert both == (challenge, challenge)


@FUZZ
@given(_header_text)
def test_fuzz_scope_parser_raises_only_auth_error(text: str) -> None:
    try:
        scope = Scope.parse(text)
    except AuthError:
        return
    assert Scope.parse(str(scope)).key == scope.key


# -- manifests and indexes ----------------------------------------------------------------


@FUZZ
@given(st.one_of(st.binary(max_size=300), _json.map(lambda v: json.dumps(v).encode())))
def test_fuzz_manifest_parser_on_arbitrary_bytes(raw: bytes) -> None:
    _only_sneaker_errors(parse_manifest, raw)


@FUZZ
@given(_manifest_doc(fuzz=True))
def test_fuzz_manifest_parser_on_mangled_documents(doc: dict[str, Any]) -> None:
    raw = json.dumps(doc).encode()
    node = _only_sneaker_errors(parse_manifest, raw)
    assert node is None or node.raw == raw


@FUZZ
@given(_manifest_doc(fuzz=False))
def test_fuzz_manifest_descriptors_round_trip(doc: dict[str, Any]) -> None:
    raw = json.dumps(doc).encode()
    node = parse_manifest(raw, expected=Digest.of_bytes(raw))
    assert node.raw == raw  # byte for byte: never re-serialised
    if isinstance(node, Index):
        entries, descs = doc["manifests"], node.manifests
    else:
        assert isinstance(node, Manifest)
        entries, descs = [doc["config"], *doc["layers"]], node.blobs
    assert [d.to_json() for d in descs] == entries
    assert [Descriptor.from_json(d.to_json()) for d in descs] == list(descs)


@pytest.mark.parametrize("raw", [b"[" * 200_000, b'{"a":' * 200_000])
def test_deeply_nested_manifest_is_invalid_not_a_crash(raw: bytes) -> None:
    assert len(raw) <= MAX_MANIFEST_BYTES
    with pytest.raises(ManifestInvalid, match="not valid JSON"):
        parse_manifest(raw)
