"""sneaker.layers.apply: applying layer tars (whiteouts, links, replacements, hostile names)."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from sneaker.errors import ArchiveError, UnsafePath
from sneaker.layers.apply import LayerApplier, LayerStats, apply_layer

MTIME = 1_600_000_000


class Layer:
    """Builds one layer tar in memory, member by member."""

    def __init__(self) -> None:
        self._buffer = io.BytesIO()
        self._tar = tarfile.open(fileobj=self._buffer, mode="w", format=tarfile.PAX_FORMAT)  # noqa: SIM115

    def _add(self, info: tarfile.TarInfo, data: bytes | None = None) -> Layer:
        info.mtime = MTIME
        if data is not None:
            info.size = len(data)
            self._tar.addfile(info, io.BytesIO(data))
        else:
            self._tar.addfile(info)
        return self

    def file(self, name: str, data: bytes = b"", mode: int = 0o644) -> Layer:
        info = tarfile.TarInfo(name)
        info.mode = mode
        return self._add(info, data)

    def dir(self, name: str, mode: int = 0o755) -> Layer:
        info = tarfile.TarInfo(name)
        info.type = tarfile.DIRTYPE
        info.mode = mode
        return self._add(info)

    def symlink(self, name: str, target: str) -> Layer:
        info = tarfile.TarInfo(name)
        info.type = tarfile.SYMTYPE
        info.linkname = target
        info.mode = 0o777
        return self._add(info)

    def hardlink(self, name: str, target: str) -> Layer:
        info = tarfile.TarInfo(name)
        info.type = tarfile.LNKTYPE
        info.linkname = target
        return self._add(info)

    def special(self, name: str, kind: bytes) -> Layer:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.mode = 0o644
        return self._add(info)

    def whiteout(self, name: str) -> Layer:
        head, _, base = name.rpartition("/")
        return self.file(f"{head}/.wh.{base}" if head else f".wh.{base}")

    def opaque(self, directory: str) -> Layer:
        return self.file(f"{directory}/.wh..wh..opq")

    def stream(self) -> io.BytesIO:
        self._tar.close()
        return io.BytesIO(self._buffer.getvalue())


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    return tmp_path / "rootfs"


@pytest.fixture
def sentinel(tmp_path: Path) -> Path:
    """A directory beside the destination that no layer may touch."""
    path = tmp_path / "sentinel"
    path.mkdir()
    (path / "keep").write_text("untouched")
    return path


def tree(root: Path) -> dict[str, str]:
    """Every path below ``root`` with a short description of what it is."""
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = Path(dirpath, name)
            rel = str(full.relative_to(root))
            st = full.lstat()
            if stat.S_ISLNK(st.st_mode):
                out[rel] = f"-> {os.readlink(full)}"
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = "dir"
            elif stat.S_ISREG(st.st_mode):
                out[rel] = full.read_text()
            else:
                out[rel] = "special"
    return out


def assert_untouched(sentinel: Path) -> None:
    assert tree(sentinel) == {"keep": "untouched"}


def apply_all(dest: Path, *layers: Layer, warnings: list[str] | None = None) -> LayerStats:
    applier = LayerApplier(dest, warn=(warnings.append if warnings is not None else print))
    total = LayerStats()
    for number, layer in enumerate(layers, 1):
        total.add(applier.apply(layer.stream(), what=f"layer {number}"))
    applier.finish()
    return total


# --------------------------------------------------------------------------- plain content


def test_files_dirs_links_modes_and_times(dest: Path) -> None:
    layer = (
        Layer()
        .dir("etc", 0o750)
        .file("etc/conf", b"conf", 0o640)
        .file("bin/tool", b"#!/bin/sh\n", 0o4755)
        .symlink("etc/abs", "/etc/conf")
        .symlink("etc/rel", "conf")
        .hardlink("etc/conf.link", "etc/conf")
        .file("/absolute/name", b"stripped")
    )
    stats = apply_layer(layer.stream(), dest, warn=print)
    assert tree(dest) == {
        "etc": "dir",
        "etc/conf": "conf",
        "etc/abs": "-> /etc/conf",
        "etc/rel": "-> conf",
        "etc/conf.link": "conf",
        "bin": "dir",
        "bin/tool": "#!/bin/sh\n",
        "absolute": "dir",
        "absolute/name": "stripped",
    }
    assert stat.S_IMODE((dest / "etc").stat().st_mode) == 0o750
    assert stat.S_IMODE((dest / "etc/conf").stat().st_mode) == 0o640
    assert stat.S_IMODE((dest / "bin/tool").stat().st_mode) == 0o4755
    assert (dest / "etc/conf").stat().st_mtime == MTIME
    assert (dest / "etc").stat().st_mtime == MTIME
    assert os.lstat(dest / "etc/abs").st_mtime == MTIME
    assert (dest / "etc/conf").stat().st_ino == (dest / "etc/conf.link").stat().st_ino
    assert (stats.files, stats.directories, stats.symlinks, stats.hardlinks) == (3, 1, 2, 1)
    assert stats.bytes_written == len(b"conf#!/bin/sh\nstripped")


def test_hardlink_to_a_file_of_a_lower_layer(dest: Path) -> None:
    apply_all(dest, Layer().file("a/x", b"x"), Layer().hardlink("b/y", "a/x"))
    assert (dest / "a/x").stat().st_ino == (dest / "b/y").stat().st_ino


def test_hardlink_to_a_symlink_links_the_symlink_itself(dest: Path) -> None:
    apply_layer(Layer().symlink("s", "/etc/passwd").hardlink("h", "s").stream(), dest)
    assert os.readlink(dest / "h") == "/etc/passwd"
    assert os.lstat(dest / "h").st_ino == os.lstat(dest / "s").st_ino


def test_hardlink_to_a_missing_file_is_an_archive_error(dest: Path) -> None:
    with pytest.raises(ArchiveError, match=r"'h' is a hardlink to 'nope', which does not exist"):
        apply_layer(Layer().hardlink("h", "nope").stream(), dest)


def test_fifo_created_and_device_skipped_with_a_warning(dest: Path) -> None:
    warnings: list[str] = []
    stats = apply_all(
        dest,
        Layer().special("dev/null", tarfile.CHRTYPE).special("run/pipe", tarfile.FIFOTYPE),
        warnings=warnings,
    )
    assert warnings == ["layer 1: skipped device node 'dev/null'"]
    assert not (dest / "dev/null").exists()
    assert stat.S_ISFIFO((dest / "run/pipe").lstat().st_mode)
    assert (stats.skipped, stats.fifos) == (1, 1)


def test_a_later_file_overwrites_an_earlier_one(dest: Path) -> None:
    apply_all(dest, Layer().file("f", b"old", 0o600), Layer().file("f", b"new", 0o755))
    assert (dest / "f").read_bytes() == b"new"
    assert stat.S_IMODE((dest / "f").stat().st_mode) == 0o755


def test_a_file_over_a_symlink_replaces_the_link_without_following_it(
    dest: Path, sentinel: Path
) -> None:
    apply_all(
        dest,
        Layer().symlink("f", str(sentinel / "keep")),
        Layer().file("f", b"mine"),
    )
    assert (dest / "f").read_bytes() == b"mine"
    assert not (dest / "f").is_symlink()
    assert_untouched(sentinel)


def test_read_only_directory_is_filled_by_a_later_layer(dest: Path) -> None:
    apply_all(dest, Layer().dir("ro", 0o555).file("ro/a", b"a"), Layer().file("ro/b", b"b"))
    assert sorted(os.listdir(dest / "ro")) == ["a", "b"]
    assert stat.S_IMODE((dest / "ro").stat().st_mode) == 0o555


def test_directory_mode_of_the_topmost_layer_wins(dest: Path) -> None:
    apply_all(dest, Layer().dir("d", 0o700), Layer().dir("d", 0o755).file("d/x", b"x"))
    assert stat.S_IMODE((dest / "d").stat().st_mode) == 0o755


def test_not_a_tar_is_an_archive_error(dest: Path) -> None:
    with pytest.raises(ArchiveError, match=r"^layer: "):
        apply_layer(io.BytesIO(b"this is not a tar archive at all" * 40), dest)


# --------------------------------------------------------------------------- whiteouts


def test_whiteout_removes_a_lower_file_and_a_lower_directory(dest: Path) -> None:
    lower = Layer().file("a/gone", b"1").file("a/stays", b"2").file("d/sub/deep", b"3")
    upper = Layer().whiteout("a/gone").whiteout("d")
    stats = apply_all(dest, lower, upper)
    assert tree(dest) == {"a": "dir", "a/stays": "2"}
    assert stats.whiteouts == 2


def test_whiteout_of_something_absent_does_nothing(dest: Path) -> None:
    apply_all(dest, Layer().file("a/x", b"x"), Layer().whiteout("a/missing").whiteout("b/c"))
    assert tree(dest) == {"a": "dir", "a/x": "x"}


def test_whiteout_keeps_what_the_same_layer_adds(dest: Path) -> None:
    lower = Layer().file("a/f", b"lower").file("b/f", b"lower")
    # The marker may come before or after the layer's own entry: the result is the same.
    upper = Layer().whiteout("a/f").file("a/f", b"upper").file("b/f", b"upper").whiteout("b/f")
    apply_all(dest, lower, upper)
    assert tree(dest) == {"a": "dir", "a/f": "upper", "b": "dir", "b/f": "upper"}


def test_whiteout_of_a_directory_keeps_the_same_layers_additions_inside(dest: Path) -> None:
    lower = Layer().file("d/old", b"old")
    upper = Layer().file("d/new", b"new").whiteout("d")
    apply_all(dest, lower, upper)
    assert tree(dest) == {"d": "dir", "d/new": "new"}


def test_whiteout_marker_is_never_written(dest: Path) -> None:
    apply_all(dest, Layer().whiteout("x").opaque("d"))
    assert tree(dest) == {}


def test_opaque_directory_hides_lower_content_and_keeps_its_own(dest: Path) -> None:
    lower = Layer().file("d/old1", b"1").file("d/sub/old2", b"2").file("other/x", b"x")
    marker_first = Layer().dir("d").opaque("d").file("d/new", b"new")
    apply_all(dest, lower, marker_first)
    assert tree(dest) == {"d": "dir", "d/new": "new", "other": "dir", "other/x": "x"}


def test_opaque_marker_after_the_layers_own_content(dest: Path) -> None:
    lower = Layer().file("d/old", b"1").file("d/keep/old", b"2")
    marker_last = Layer().file("d/new", b"new").file("d/keep/new", b"n").opaque("d")
    apply_all(dest, lower, marker_last)
    assert tree(dest) == {
        "d": "dir",
        "d/new": "new",
        "d/keep": "dir",
        "d/keep/new": "n",
    }


def test_opaque_marker_in_a_nested_directory(dest: Path) -> None:
    lower = Layer().file("a/b/old", b"1").file("a/sibling", b"s")
    apply_all(dest, lower, Layer().opaque("a/b"))
    assert tree(dest) == {"a": "dir", "a/b": "dir", "a/sibling": "s"}


def test_whiteout_of_the_directory_itself_is_refused(dest: Path) -> None:
    with pytest.raises(UnsafePath, match=r"'a/\.wh\.\.' is a whiteout of its own"):
        apply_all(dest, Layer().file("a/x", b"x"), Layer().file("a/.wh.."))
    assert (dest / "a/x").exists()


# --------------------------------------------------------------------------- replacements


def test_directory_replaced_by_a_file(dest: Path) -> None:
    apply_all(dest, Layer().file("p/inner", b"in"), Layer().file("p", b"now a file"))
    assert tree(dest) == {"p": "now a file"}


def test_file_replaced_by_a_directory(dest: Path) -> None:
    apply_all(dest, Layer().file("p", b"file"), Layer().dir("p", 0o711).file("p/inner", b"in"))
    assert tree(dest) == {"p": "dir", "p/inner": "in"}
    assert stat.S_IMODE((dest / "p").stat().st_mode) == 0o711


def test_directory_replaced_by_a_symlink_and_back(dest: Path) -> None:
    apply_all(
        dest,
        Layer().file("p/inner", b"in"),
        Layer().symlink("p", "elsewhere"),
        Layer().dir("p").file("p/again", b"a"),
    )
    assert tree(dest) == {"p": "dir", "p/again": "a"}


def test_symlink_replaced_by_a_directory_does_not_touch_its_target(
    dest: Path, sentinel: Path
) -> None:
    apply_all(dest, Layer().symlink("p", str(sentinel)), Layer().dir("p", 0o700))
    assert tree(dest) == {"p": "dir"}
    assert_untouched(sentinel)


def test_relative_symlink_inside_the_root_is_followed_for_writes(dest: Path) -> None:
    apply_all(
        dest,
        Layer().dir("usr/lib").symlink("lib", "usr/lib"),
        Layer().file("lib/libc.so", b"libc"),
    )
    assert (dest / "usr/lib/libc.so").read_bytes() == b"libc"
    assert os.readlink(dest / "lib") == "usr/lib"


def test_parent_that_is_a_file_is_an_archive_error(dest: Path) -> None:
    with pytest.raises(ArchiveError, match=r"member 'f/x': 'f' is not a directory"):
        apply_all(dest, Layer().file("f", b"file"), Layer().file("f/x", b"x"))


# --------------------------------------------------------------------------- hostile layers


def test_dotdot_escape_is_refused(dest: Path, sentinel: Path) -> None:
    with pytest.raises(UnsafePath, match=r"^layer: member '\.\./sentinel/pwned' escapes"):
        apply_layer(Layer().file("../sentinel/pwned", b"x").stream(), dest)
    assert_untouched(sentinel)


def test_dotdot_escape_after_a_directory_is_refused(dest: Path, sentinel: Path) -> None:
    with pytest.raises(UnsafePath, match=r"member 'a/\.\./\.\./sentinel/keep' escapes"):
        apply_layer(Layer().file("a/../../sentinel/keep", b"x").stream(), dest)
    assert_untouched(sentinel)


def inside(dest: Path, absolute: Path) -> Path:
    """Where the absolute path ``absolute`` is inside ``dest`` seen as a chroot."""
    return dest / absolute.relative_to("/")


def test_write_through_a_symlink_to_root_lands_inside(dest: Path, sentinel: Path) -> None:
    # layer 1: a -> /, layer 2: a/<absolute path of the sentinel>/pwned: "/" is dest's root
    name = f"a{sentinel}/pwned"
    apply_all(dest, Layer().symlink("a", "/"), Layer().file(name, b"pwned"))
    assert (inside(dest, sentinel) / "pwned").read_bytes() == b"pwned"
    assert os.readlink(dest / "a") == "/"
    assert_untouched(sentinel)


def test_write_through_an_absolute_symlink_lands_inside(dest: Path, sentinel: Path) -> None:
    layer = Layer().symlink("link", str(sentinel)).file("link/keep", b"pwned")
    apply_layer(layer.stream(), dest)
    assert (inside(dest, sentinel) / "keep").read_bytes() == b"pwned"
    assert_untouched(sentinel)
    assert os.readlink(dest / "link") == str(sentinel)


def test_absolute_symlink_of_a_lower_layer_resolves_in_the_root(dest: Path) -> None:
    # Debian and Ubuntu: var/run -> /run in the base, a later layer writes var/run/x.pid
    apply_all(
        dest,
        Layer().dir("run").dir("var").symlink("var/run", "/run").symlink("lib", "usr/lib"),
        Layer().dir("usr/lib").file("var/run/foo.pid", b"42").file("lib/x", b"x"),
    )
    assert tree(dest) == {
        "run": "dir",
        "run/foo.pid": "42",
        "var": "dir",
        "var/run": "-> /run",
        "lib": "-> usr/lib",
        "usr": "dir",
        "usr/lib": "dir",
        "usr/lib/x": "x",
    }


def test_write_through_a_relative_symlink_leading_out_stays_in_the_root(
    dest: Path, sentinel: Path
) -> None:
    # d/up -> ../../sentinel: the second '..' is at the root already and stays there
    layer = Layer().symlink("d/up", "../../sentinel").file("d/up/pwned", b"x")
    apply_layer(layer.stream(), dest)
    assert (dest / "sentinel/pwned").read_bytes() == b"x"
    assert_untouched(sentinel)


def test_chain_of_symlinks_ending_outside_resolves_inside(dest: Path, sentinel: Path) -> None:
    layer = Layer().symlink("a", "b").symlink("b", str(sentinel)).file("a/pwned", b"x")
    apply_layer(layer.stream(), dest)
    assert (inside(dest, sentinel) / "pwned").read_bytes() == b"x"
    assert_untouched(sentinel)


def test_symlink_loop_is_refused(dest: Path) -> None:
    layer = Layer().symlink("a", "b").symlink("b", "a").file("a/x", b"x")
    with pytest.raises(UnsafePath, match=r"member 'a/x' goes through too many symlinks"):
        apply_layer(layer.stream(), dest)


def test_hardlink_outside_the_root_is_refused(dest: Path, sentinel: Path) -> None:
    layer = Layer().hardlink("h", "../../x")
    with pytest.raises(UnsafePath, match=r"member 'h' is a hardlink to '\.\./\.\./x', outside"):
        apply_layer(layer.stream(), dest)
    layer = Layer().hardlink("h", "../sentinel/keep")
    with pytest.raises(UnsafePath, match=r"member 'h' is a hardlink to '\.\./sentinel/keep'"):
        apply_layer(layer.stream(), dest)
    assert not (dest / "h").exists()
    assert (sentinel / "keep").stat().st_nlink == 1
    assert_untouched(sentinel)


def test_hardlink_through_a_symlink_to_root_links_inside(dest: Path, sentinel: Path) -> None:
    target = f"a{sentinel}/keep"
    layer = Layer().symlink("a", "/").hardlink("h", target)
    with pytest.raises(ArchiveError, match=r"member 'h' is a hardlink to .* does not exist"):
        apply_layer(layer.stream(), dest)
    assert (sentinel / "keep").stat().st_nlink == 1
    # with the file inside the root, the link is to that copy, never to the sentinel's
    layer = Layer().file(f"{sentinel}/keep", b"inside").hardlink("h", target)
    apply_layer(layer.stream(), dest)
    assert (dest / "h").read_bytes() == b"inside"
    assert (dest / "h").stat().st_ino == (inside(dest, sentinel) / "keep").stat().st_ino
    assert (sentinel / "keep").stat().st_nlink == 1
    assert_untouched(sentinel)


def test_whiteout_through_an_absolute_symlink_stays_inside(dest: Path, sentinel: Path) -> None:
    lower = Layer().file(f"{sentinel}/keep", b"in").file(f"{sentinel}/more", b"m")
    apply_all(dest, lower.symlink("link", str(sentinel)), Layer().whiteout("link/keep"))
    assert sorted(p.name for p in inside(dest, sentinel).iterdir()) == ["more"]
    assert_untouched(sentinel)
    apply_all(dest, Layer().opaque("link"))
    assert list(inside(dest, sentinel).iterdir()) == []
    assert_untouched(sentinel)


def test_whiteout_escaping_with_dotdot_is_refused(dest: Path, sentinel: Path) -> None:
    with pytest.raises(UnsafePath, match=r"member '\.\./sentinel/\.wh\.keep' escapes"):
        apply_layer(Layer().whiteout("../sentinel/keep").stream(), dest)
    assert_untouched(sentinel)


def test_symlink_escape_as_final_component_is_only_a_link(dest: Path, sentinel: Path) -> None:
    # A link pointing out is fine as long as nothing is written through it.
    apply_all(dest, Layer().symlink("out", "../sentinel"), Layer().symlink("out", "../elsewhere"))
    assert os.readlink(dest / "out") == "../elsewhere"
    assert_untouched(sentinel)


# --------------------------------------------------------------------------- without root

_AS_NOBODY = r"""
import io, json, os, sys, tarfile
sys.path[:0] = sys.argv[2:]
from tests.unit.test_layers import Layer, tree
from sneaker.layers.apply import LayerApplier

dest = sys.argv[1]
layers = [
    Layer().dir("ro", 0o555).file("ro/a", b"a", 0o000).dir("locked", 0o000)
    .file("locked/inner", b"i").special("dev/null", tarfile.CHRTYPE),
    Layer().file("ro/a", b"again", 0o4755).file("ro/b", b"b").whiteout("locked")
    .special("pipe", tarfile.FIFOTYPE),
]
streams = [layer.stream() for layer in layers]
os.setgid(65534)
os.setuid(65534)
warnings = []
applier = LayerApplier(__import__("pathlib").Path(dest), warn=warnings.append)
for number, stream in enumerate(streams, 1):
    applier.apply(stream, what=f"layer {number}")
applier.finish()
modes = {p: oct(os.lstat(os.path.join(dest, p)).st_mode & 0o7777) for p in ("ro", "ro/a")}
print(json.dumps({"tree": tree(__import__("pathlib").Path(dest)), "modes": modes,
                  "warnings": warnings}))
"""


def test_layers_apply_without_root() -> None:
    """Drops from root to nobody for the unpack (needs root to drop; CI runs as root)."""
    from tests.helpers import need_root

    need_root()
    import json
    import shutil
    import subprocess
    import sys
    import tempfile

    # pytest's own temporary directories are private to root: nobody could not reach them.
    top = Path(tempfile.mkdtemp(prefix="sneaker-nobody-"))
    try:
        top.chmod(0o755)
        dest = top / "rootfs"
        dest.mkdir()
        os.chown(dest, 65534, 65534)
        repo = Path(__file__).resolve().parents[2]
        out = subprocess.run(
            [sys.executable, "-c", _AS_NOBODY, str(dest), str(repo), str(repo / "src")],
            capture_output=True,
            text=True,
            check=False,
        )
    finally:
        shutil.rmtree(top)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["tree"] == {
        "ro": "dir",
        "ro/a": "again",
        "ro/b": "b",
        "pipe": "special",
    }
    assert result["modes"] == {"ro": oct(0o555), "ro/a": oct(0o4755)}
    assert result["warnings"] == ["layer 1: skipped device node 'dev/null'"]
