"""The OS local builds run in: a Debian 11 (bullseye) root, no newer than Lambda's.

Lambda's provided.al2023 has glibc 2.34 and GCC 11; this machine may be newer (Debian 12:
glibc 2.36, GCC 12), and a layer compiled against a newer glibc does not load on Lambda.
Bullseye (glibc 2.31, GCC 10.2) is older than both, so what is compiled in it links only
symbol versions Lambda has. On CodeBuild the build machine is Amazon Linux 2023 itself and
none of this is used.

The root is made by mmdebstrap from ``buildspec/deps-apt.txt`` (the same list the install
phase checks), once per list: it lives in ``<cache>/buildroots/<identity>`` where the
identity carries a hash of the list. It is made in a temporary directory and renamed into
place only when complete, under a lock, so a half-made root is never used. Builds bind it
read-only at ``/`` with bubblewrap (:func:`bwrap_prefix`).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from chalicelib.errors import BuildStartError
from rlayer.builders.sources import REPO_ROOT, cache_dir

SUITE = "bullseye"
# Its toolchain, what buildspec/toolchain.txt's needs are held against before a build
# (checked against the root itself by the build-root tests).
TOOLCHAIN = {"gcc": "10.2", "glibc": "2.31"}
ROOT_NAME = f"Debian 11 ({SUITE}): GCC {TOOLCHAIN['gcc']}, glibc {TOOLCHAIN['glibc']}"
MIRROR = os.environ.get("RLAYER_DEBIAN_MIRROR", "http://deb.debian.org/debian")
PACKAGE_LIST = REPO_ROOT / "buildspec" / "deps-apt.txt"
META = ".rlayer-root.json"
SYSTEM_DIRS = ("bin", "etc", "lib", "lib32", "lib64", "libx32", "sbin", "usr", "var")
ROOT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class BuildRootError(BuildStartError):
    """The build root could not be made (archive unreachable, a package missing)."""


@dataclass(frozen=True)
class BuildRoot:
    identity: str  # debian-bullseye-<hash>: part of the build's cache keys
    path: Path
    created_seconds: float
    size_bytes: int


def packages(extra: tuple[str, ...] = ()) -> list[str]:
    listed = [
        line.strip()
        for line in PACKAGE_LIST.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    return sorted({*listed, *extra})


def identity(extra: tuple[str, ...] = ()) -> str:
    digest = hashlib.sha256("\n".join([SUITE, *packages(extra)]).encode()).hexdigest()
    return f"debian-{SUITE}-{digest[:12]}"


def roots_dir() -> Path:
    """``$RLAYER_BUILDROOT_DIR``, else ``<cache>/buildroots``: one per machine, usually."""
    explicit = os.environ.get("RLAYER_BUILDROOT_DIR")
    return Path(explicit) if explicit else cache_dir() / "buildroots"


def existing(extra: tuple[str, ...] = ()) -> BuildRoot | None:
    path = roots_dir() / identity(extra)
    try:
        meta = json.loads((path / META).read_text())
    except (OSError, ValueError):
        return None
    return BuildRoot(identity(extra), path, meta["created_seconds"], meta["size_bytes"])


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def ensure(extra: tuple[str, ...] = (), *, log: Path | None = None) -> BuildRoot:
    """The build root for this package list, made first if need be (see the module doc)."""
    found = existing(extra)
    if found is not None:
        return found
    name = identity(extra)
    with _locked(roots_dir() / f".{name}.lock"):
        found = existing(extra)  # made by another build while we waited
        if found is not None:
            return found
        return _make(name, packages(extra), log)


def _make(name: str, wanted: list[str], log: Path | None) -> BuildRoot:
    if shutil.which("mmdebstrap") is None:
        raise BuildRootError("build root: mmdebstrap is not installed (make deps installs it)")
    final = roots_dir() / name
    tmp = roots_dir() / f".{name}.{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    started = time.monotonic()
    argv = [
        "mmdebstrap",
        "--variant=buildd",
        f"--include={','.join(wanted)}",
        "--aptopt=Acquire::Retries 3",
        SUITE,
        str(tmp),
        MIRROR,
    ]
    with open(log or os.devnull, "ab") as out:
        out.write(f"build root: {' '.join(argv)}\n".encode())
        out.flush()
        done = subprocess.run(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.PIPE, check=False
        )
        out.write(done.stderr)
    if done.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        lines = [
            line
            for line in done.stderr.decode(errors="replace").splitlines()
            if line.startswith(("E:", "W:", "mmdebstrap:")) or "rror" in line
        ]
        detail = "; ".join(lines[-4:]) or f"exit status {done.returncode}"
        raise BuildRootError(f"build root: mmdebstrap {SUITE} failed: {detail}")
    seconds = round(time.monotonic() - started, 1)
    size = _du(tmp)
    (tmp / META).write_text(
        json.dumps(
            {"suite": SUITE, "packages": wanted, "created_seconds": seconds, "size_bytes": size}
        )
    )
    tmp.rename(final)
    return BuildRoot(name, final, seconds, size)


def _du(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for f in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, f)).st_size
    return total


def bwrap_prefix(root: Path, *, writable: list[Path], readable: list[Path], opt: Path) -> list[str]:
    """bubblewrap argv entering ``root`` read-only, with ``writable`` and ``readable`` host
    paths at the same paths inside, this build's /opt at /opt and a private /tmp."""
    tmp = opt.parent / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    # A tmpfs at / holding the root's top-level directories (read-only) rather than the root
    # itself at /: bwrap can then create the mount points of the host paths bound below.
    argv = ["bwrap", "--tmpfs", "/"]
    # Only the system directories: /root, /home and the like stay free for the host paths.
    for entry in sorted(root.iterdir()):
        if entry.name not in SYSTEM_DIRS:
            continue
        if entry.is_symlink():
            argv += ["--symlink", os.readlink(entry), f"/{entry.name}"]
        elif entry.is_dir():
            argv += ["--ro-bind", str(entry), f"/{entry.name}"]
    argv += ["--proc", "/proc", "--dev", "/dev"]
    argv += ["--ro-bind-try", "/etc/resolv.conf", "/etc/resolv.conf"]
    argv += ["--bind", str(tmp), "/tmp", "--bind", str(opt), "/opt"]
    for path in readable:
        argv += ["--ro-bind", str(path), str(path)]
    for path in writable:
        argv += ["--bind", str(path), str(path)]
    argv += ["--setenv", "PATH", ROOT_PATH, "--setenv", "HOME", "/tmp", "--die-with-parent"]
    return argv
