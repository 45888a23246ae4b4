"""buildspec/closure.sh: the shared-library closure of a layer, with a directory at /opt.

Runs the real script against real ELF files copied from this machine, under bubblewrap
(the same way the build runs it), so the paths ldd resolves are the /opt ones.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from chalicelib.lambda_os import target
from rlayer.builders.buildspec import BUILDSPEC

CLOSURE = BUILDSPEC.parent / "closure.sh"

# bwrap, patchelf and xz come with scripts/system-deps.sh (`make deps`).


def _ldd_names(elf: Path) -> set[str]:
    out = subprocess.run(["ldd", str(elf)], capture_output=True, text=True, check=True).stdout
    return {line.split()[0] for line in out.splitlines() if "=>" in line}


def _closure(opt: Path, listing: Path, *dirs: str) -> subprocess.CompletedProcess[str]:
    os_libs = listing.with_name("os-libs.txt")
    os_libs.write_text("".join(f"{name}\n" for name in _os_libs()))
    return subprocess.run(
        [
            *("bwrap", "--dev-bind", "/", "/", "--bind", str(opt), "/opt", "--"),
            *("sh", str(CLOSURE), str(listing), str(os_libs), *dirs),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )


def _os_libs() -> set[str]:
    return set(target().libraries)


def test_libraries_outside_glibc_are_copied_and_listed(tmp_path: Path) -> None:
    opt = tmp_path / "opt"
    (opt / "R/bin").mkdir(parents=True)
    xz = opt / "R/bin/xz"
    shutil.copy2(shutil.which("xz") or "", xz)
    needed = _ldd_names(xz) - _os_libs()
    assert "liblzma.so.5" in needed

    listing = tmp_path / "libs.txt"
    done = _closure(opt, listing, "/opt/R")
    assert done.returncode == 0, done.stderr
    assert set(listing.read_text().split()) == needed
    for name in needed:
        assert (opt / "lib" / name).is_file()
    # glibc and the loader stay with the OS.
    assert not (opt / "lib/libc.so.6").exists()
    assert not any(p.name.startswith("ld-linux") for p in (opt / "lib").iterdir())


def test_libraries_already_in_opt_are_not_copied_again(tmp_path: Path) -> None:
    opt = tmp_path / "opt"
    (opt / "packages/bin").mkdir(parents=True)
    (opt / "lib").mkdir()
    shutil.copy2(shutil.which("xz") or "", opt / "packages/bin/xz")
    # The runtime layer bundled liblzma already: /opt/lib resolves it.
    first = tmp_path / "first.txt"
    assert _closure(opt, first, "/opt/packages").returncode == 0
    second = tmp_path / "second.txt"
    done = _closure(opt, second, "/opt/packages")
    assert done.returncode == 0, done.stderr
    assert "liblzma.so.5" in first.read_text()
    assert second.read_text() == ""


def test_a_missing_library_fails_the_build_naming_it(tmp_path: Path) -> None:
    opt = tmp_path / "opt"
    (opt / "packages/library/foo/libs").mkdir(parents=True)
    so = opt / "packages/library/foo/libs/foo.so"
    shutil.copy2(shutil.which("xz") or "", so)
    subprocess.run(["patchelf", "--add-needed", "libnotthere.so.7", str(so)], check=True)
    done = _closure(opt, tmp_path / "libs.txt", "/opt/packages")
    assert done.returncode != 0
    assert "libnotthere.so.7" in done.stderr
    assert "/opt/packages/library/foo/libs/foo.so" in done.stderr


def test_what_only_an_os_library_needs_is_not_bundled(tmp_path: Path) -> None:
    opt = tmp_path / "opt"
    (opt / "R/bin").mkdir(parents=True)
    curl = opt / "R/bin/curl"
    shutil.copy2(shutil.which("curl") or "", curl)
    # libcurl is the OS's (provided.al2023 keeps it): neither it nor the TLS, SSH or
    # HTTP/2 libraries only it needs belong in the layer.
    flat = _ldd_names(curl)
    assert "libcurl.so.4" in flat and len(flat - _os_libs()) > 0
    listing = tmp_path / "libs.txt"
    done = _closure(opt, listing, "/opt/R")
    assert done.returncode == 0, done.stderr
    assert listing.read_text() == ""


def test_dependencies_of_bundled_libraries_are_bundled_too(tmp_path: Path) -> None:
    opt = tmp_path / "opt"
    (opt / "R/bin").mkdir(parents=True)
    tool = opt / "R/bin/tool"
    shutil.copy2(shutil.which("xz") or "", tool)
    subprocess.run(["patchelf", "--add-needed", "libgnutls.so.30", str(tool)], check=True)
    expected = _ldd_names(tool) - _os_libs()
    # gnutls needs nettle, gmp, ... which the tool itself does not name.
    assert {"libgnutls.so.30", "libnettle.so.8", "libgmp.so.10"} <= expected
    listing = tmp_path / "libs.txt"
    done = _closure(opt, listing, "/opt/R")
    assert done.returncode == 0, done.stderr
    assert set(listing.read_text().split()) == expected
