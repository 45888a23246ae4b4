"""A root file system shaped like provided.al2023, for proving layers on this machine.

What the canary and ``rlayer invoke --layer`` run in instead of the host's /usr: the
libraries the target's row of ``lambda_os.json`` says the image provides, with the libraries
those need in turn, the image's tools (sh, bash, ...), CA certificates and the C.UTF-8
locale, all taken from the build root (``rlayer.builders.buildroot``, Debian 11), so
nothing is newer than Lambda's. They sit where Amazon Linux puts them: libraries in
/usr/lib64 (with an ld.so.cache), /bin, /lib and /lib64 as links into /usr, the CA bundle
at /etc/pki/tls/certs/ca-bundle.crt. The layers then see only what they would see on
Lambda, and a library a layer forgot to bundle is missing here too.

What still differs (the README lists it): the libraries are Debian 11's builds (OpenSSL
1.1 under libcurl instead of OpenSSL 3, so libssl.so.3 is absent), only the gconv modules
glibc's main package keeps on Amazon Linux (UTF-16/32/7, UNICODE, ISO-8859-1/15), at
Debian's path, no zoneinfo (TZ=:UTC is glibc's built-in UTC), no en_US.UTF-8 locale.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

from chalicelib.errors import ConfigurationError
from chalicelib.lambda_os import DEFAULT_TARGET, LambdaOS, target
from chalicelib.pipeline.abi import ElfUnreadable, is_elf, read_elf
from rlayer.builders import buildroot
from rlayer.builders.sources import cache_dir

# Bump when the layout below changes: part of the cache key.
LAYOUT_VERSION = "2"
META = ".rlayer-lambda-root.json"
TRIPLETS = ("x86_64-linux-gnu", "aarch64-linux-gnu")
# The gconv modules Amazon Linux's glibc package keeps (the rest are in glibc-gconv-extra,
# which the image lacks); they stay at Debian's path, where Debian's libc looks for them.
GCONV_MODULES = (
    "UTF-16.so",
    "UTF-32.so",
    "UTF-7.so",
    "UNICODE.so",
    "ISO8859-1.so",
    "ISO8859-15.so",
    "gconv-modules",
)
MOUNT_POINTS = ("proc", "dev", "tmp", "opt", "var/task", "var/runtime", "root")
LINKS = {"bin": "usr/bin", "sbin": "usr/sbin", "lib": "usr/lib", "lib64": "usr/lib64"}
PASSWD = (
    "root:x:0:0:root:/root:/bin/bash\nsbx_user1051:x:993:990::/home/sbx_user1051:/sbin/nologin\n"
)
GROUP = "root:x:0:\nsbx_user1051:x:990:\n"


def _resolve(root: Path, path: str) -> Path | None:
    """``path`` inside ``root``, following symlinks (absolute ones relative to ``root``)."""
    current = path
    for _ in range(40):
        host = root / current.lstrip("/")
        parent = host.parent.resolve()
        # A directory link with an absolute target would resolve on this machine, not in
        # the root: never copy a host file into the Lambda root.
        if not str(parent).startswith(str(root.resolve())):
            return None
        if host.is_symlink():
            target_ = os.readlink(host)
            current = (
                target_
                if target_.startswith("/")
                else os.path.normpath(os.path.join(os.path.dirname(current), target_))
            )
            continue
        return host if host.is_file() else None
    return None


def _find_library(root: Path, soname: str) -> Path | None:
    for directory in (
        *(f"/{p}/{t}" for t in TRIPLETS for p in ("lib", "usr/lib")),
        "/lib",
        "/usr/lib",
        "/lib64",
        "/usr/lib64",
    ):
        found = _resolve(root, f"{directory}/{soname}")
        if found is not None:
            return found
    return None


def _needed(path: Path) -> tuple[str, ...]:
    data = path.read_bytes()
    if not is_elf(data):
        return ()
    try:
        return read_elf(str(path), data).needed
    except ElfUnreadable:
        return ()


def key(build: buildroot.BuildRoot, os_row: LambdaOS) -> str:
    digest = hashlib.sha256(
        json.dumps([LAYOUT_VERSION, os_row.model_dump()], sort_keys=True).encode()
    ).hexdigest()[:12]
    return f"{os_row.name}-{build.identity}-{digest}"


def ensure(target_name: str = DEFAULT_TARGET) -> Path:
    """The Lambda-shaped root for ``target_name``, made (once, atomically) if need be."""
    os_row = target(target_name)
    build = buildroot.ensure()
    name = key(build, os_row)
    final = cache_dir() / "lambda-roots" / name
    if (final / META).is_file():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    with open(final.parent / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (final / META).is_file():
            return final
        tmp = final.parent / f".{name}.{os.getpid()}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            contents = _assemble(build.path, os_row, tmp)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        (tmp / META).write_text(json.dumps(contents, indent=1))
        tmp.rename(final)
    return final


def _assemble(src: Path, os_row: LambdaOS, dest: Path) -> dict[str, list[str]]:
    lib64 = dest / "usr/lib64"
    for directory in ("usr/bin", "usr/sbin", "usr/lib", "usr/lib64", "etc", *MOUNT_POINTS):
        (dest / directory).mkdir(parents=True, exist_ok=True)
    for link, to in LINKS.items():
        (dest / link).symlink_to(to)
    provided: list[str] = []
    extra: list[str] = []
    todo: list[tuple[str, bool]] = [(soname, True) for soname in os_row.libraries]
    tools: list[str] = []
    for tool in os_row.tools:
        if tool == "sh" and "bash" in os_row.tools:
            continue  # Amazon Linux's sh is bash
        found = _resolve(src, f"/usr/bin/{tool}") or _resolve(src, f"/bin/{tool}")
        if found is None:
            raise ConfigurationError(f"the build root has no {tool} for the Lambda root")
        shutil.copy2(found, dest / "usr/bin" / tool)
        tools.append(tool)
        todo += [(n, False) for n in _needed(found)]
    if "sh" in os_row.tools and "bash" in os_row.tools:
        (dest / "usr/bin/sh").symlink_to("bash")
    seen: set[str] = set()
    while todo:
        soname, listed = todo.pop(0)
        if soname in seen:
            continue
        seen.add(soname)
        found = _find_library(src, soname)
        if found is None:
            continue  # not in Debian 11 (libssl.so.3): named in the module docstring
        shutil.copy2(found, lib64 / soname)
        (provided if listed else extra).append(soname)
        todo += [(n, False) for n in _needed(found) if n not in seen]
    # The interpreter's absolute paths: /lib64/ld-linux-x86-64.so.2, /lib/ld-linux-aarch64.so.1.
    if (lib64 / "ld-linux-aarch64.so.1").exists():
        (dest / "usr/lib/ld-linux-aarch64.so.1").symlink_to("../lib64/ld-linux-aarch64.so.1")
    (dest / "etc/ld.so.conf").write_text("/usr/lib64\n")
    ldconfig = _resolve(src, "/sbin/ldconfig")
    if ldconfig is not None:
        # Debian's ldconfig is static: it runs here and writes the root's ld.so.cache.
        subprocess.run([str(ldconfig), "-X", "-r", str(dest)], check=True, capture_output=True)
    certs = _resolve(src, "/etc/ssl/certs/ca-certificates.crt")
    if certs is not None:
        (dest / "etc/pki/tls/certs").mkdir(parents=True)
        shutil.copyfile(certs, dest / "etc/pki/tls/certs/ca-bundle.crt")
        # Where Debian's libcurl looks by default; Amazon Linux's looks at the bundle itself.
        (dest / "etc/ssl/certs").mkdir(parents=True)
        (dest / "etc/ssl/certs/ca-certificates.crt").symlink_to("/etc/pki/tls/certs/ca-bundle.crt")
    for triplet in TRIPLETS:
        gconv = src / "usr/lib" / triplet / "gconv"
        if gconv.is_dir():
            (dest / "usr/lib" / triplet / "gconv").mkdir(parents=True)
            for module in GCONV_MODULES:
                shutil.copy2(gconv / module, dest / "usr/lib" / triplet / "gconv" / module)
    locale = src / "usr/lib/locale/C.UTF-8"
    if locale.is_dir():
        shutil.copytree(locale, dest / "usr/lib/locale/C.utf8")
    (dest / "etc/passwd").write_text(PASSWD)
    (dest / "etc/group").write_text(GROUP)
    (dest / "etc/hosts").write_text("127.0.0.1 localhost\n::1 localhost\n")
    return {"provided": sorted(provided), "extra": sorted(extra), "tools": tools}
