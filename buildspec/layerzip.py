#!/usr/bin/env python3
"""Deterministic layer zips and their manifest.json (python3 standard library only: it runs
on the build machine, Amazon Linux 2023 or Debian, before any project code is installed).

    layerzip.py zip ROOT OUT.zip PATH...      zip ROOT/PATH... (files, dirs, symlinks)
    layerzip.py manifest ZIP KIND OUT.json [options]
    layerzip.py os-libs TABLE TARGET           the sonames the Lambda OS provides, one a line

Hand-written rather than `zip -r` because the same inputs must give the same sha256:
entries sorted, every timestamp 1980-01-01 00:00, permissions set explicitly (0755 for
directories and anything executable on disk, 0644 otherwise, symlinks kept as links).

The manifest's fields are chalicelib.models.LayerManifest's, field for field; request values
(R version, architecture, layer names) are read from the RLAYER_* environment, which
buildspec/common.sh has validated.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import stat
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path

FIXED_TIME = (1980, 1, 1, 0, 0, 0)
DIR_MODE = stat.S_IFDIR | 0o755
EXEC_MODE = stat.S_IFREG | 0o755
FILE_MODE = stat.S_IFREG | 0o644
LINK_MODE = stat.S_IFLNK | 0o777
# Info-ZIP's "made on Unix": unzip (and Lambda) then honour the mode bits.
UNIX = 3
MANIFEST_FIELDS = (
    "kind",
    "layer_name",
    "zip_name",
    "r_version",
    "architecture",
    "recipe_hash",
    "build_root",
    "needs_glibc",
    "needs_glibcxx",
    "packages",
    "pulled_in_by",
    "shared_libraries",
    "file_count",
    "zipped_bytes",
    "unzipped_bytes",
    "sha256",
    "configure_flags",
    "build_seconds",
    "reused_runtime",
)


def _walk(root: Path, rel: str) -> Iterator[str]:
    path = root / rel
    if path.is_symlink() or not path.is_dir():
        if not path.is_symlink() and not path.exists():
            raise FileNotFoundError(f"{path} does not exist")
        yield rel
        return
    yield rel + "/"
    for child in sorted(os.listdir(path)):
        yield from _walk(root, f"{rel}/{child}")


def _entry(name: str, mode: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
    info.create_system = UNIX
    info.external_attr = (mode & 0xFFFF) << 16
    if stat.S_ISDIR(mode):
        info.external_attr |= 0x10  # MS-DOS directory flag, as Info-ZIP writes it
    return info


def write_zip(root: Path, out: Path, paths: Iterable[str]) -> None:
    names = sorted({n for p in paths for n in _walk(root, p.strip("/"))})
    tmp = out.with_name(out.name + ".part")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for name in names:
            path = root / name.rstrip("/")
            if name.endswith("/"):
                zf.writestr(_entry(name, DIR_MODE), b"")
            elif path.is_symlink():
                info = _entry(name, LINK_MODE)
                info.compress_type = zipfile.ZIP_STORED
                zf.writestr(info, os.readlink(path).encode())
            else:
                executable = os.stat(path).st_mode & 0o111
                info = _entry(name, EXEC_MODE if executable else FILE_MODE)
                info.compress_type = zipfile.ZIP_DEFLATED
                with open(path, "rb") as src, zf.open(info, "w") as dst:
                    while chunk := src.read(1 << 20):
                        dst.write(chunk)
    tmp.replace(out)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def read_dcf_field(description: Path, field: str) -> str | None:
    for line in description.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith(field + ":"):
            return line.split(":", 1)[1].strip()
    return None


def installed_packages(libraries: Iterable[Path]) -> dict[str, str]:
    """name -> version of the packages installed in these library trees, leaving out R's
    base packages (base, stats, utils, ...), which are R itself."""
    found: dict[str, str] = {}
    for lib in libraries:
        if not lib.is_dir():
            continue
        for pkg in sorted(lib.iterdir()):
            description = pkg / "DESCRIPTION"
            if not description.is_file() or read_dcf_field(description, "Priority") == "base":
                continue
            version = read_dcf_field(description, "Version")
            if version:
                found.setdefault(pkg.name, version)
    return dict(sorted(found.items()))


def read_dcf(description: Path) -> dict[str, str]:
    """The fields of one DESCRIPTION, continuation lines joined."""
    fields: dict[str, str] = {}
    key = ""
    for line in description.read_text(encoding="utf-8", errors="replace").splitlines():
        if line[:1] in (" ", "\t") and key:
            fields[key] += " " + line.strip()
        elif ":" in line:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return fields


def pulled_in_by(libraries: Iterable[Path], requested: list[str]) -> dict[str, list[str]]:
    """name -> what put it in the layer: "(requested)" and/or the installed packages whose
    Depends or Imports name it."""
    needs: dict[str, list[str]] = {}
    for lib in libraries:
        if not lib.is_dir():
            continue
        for pkg in sorted(lib.iterdir()):
            if not (pkg / "DESCRIPTION").is_file():
                continue
            fields = read_dcf(pkg / "DESCRIPTION")
            text = ",".join(fields.get(k, "") for k in ("Depends", "Imports"))
            for item in text.split(","):
                name = item.split("(")[0].strip()
                if name:
                    needs.setdefault(name, []).append(pkg.name)
    return {
        name: (["(requested)"] if name in requested else []) + sorted(needs.get(name, []))
        for name in installed_packages(libraries)
    }


_VERNEED_RE = re.compile(r"Name: (\S+)\s+Flags:")


def needed_versions(zip_path: Path) -> list[str]:
    """Every version node the zip's ELF files need, as binutils' readelf lists them. The
    ABI gate (chalicelib/pipeline/abi.py, pyelftools) reads the same files and compares."""
    nodes: list[str] = []
    with zipfile.ZipFile(zip_path) as zf, tempfile.TemporaryDirectory() as tmp:
        for info in zf.infolist():
            if info.is_dir() or stat.S_ISLNK(info.external_attr >> 16):
                continue
            with zf.open(info) as entry:
                if entry.read(4) != b"\x7fELF":
                    continue
            elf = Path(tmp) / "elf"
            elf.write_bytes(zf.read(info))
            out = subprocess.run(
                ["readelf", "--version-info", "--wide", str(elf)],
                capture_output=True,
                text=True,
                check=False,
                env={**os.environ, "LC_ALL": "C"},
            ).stdout
            needs = out.split("Version needs section", 1)
            if len(needs) == 2:
                nodes += _VERNEED_RE.findall(needs[1])
    return nodes


def newest(nodes: Iterable[str], prefix: str) -> str | None:
    # chalicelib.lambda_os.newest, again: this script runs in the build OS before any
    # project code is installed (standard library only); the gate compares the two.
    best: tuple[int, ...] | None = None
    for node in nodes:
        rest = node[len(prefix) :]
        if node.startswith(prefix) and re.fullmatch(r"\d+(\.\d+)*", rest):
            version = tuple(int(p) for p in rest.split("."))
            best = version if best is None or version > best else best
    return ".".join(map(str, best)) if best is not None else None


def os_libs(table: Path, target: str) -> list[str]:
    return list(json.loads(table.read_text())["targets"][target]["libraries"])


def _lines(path: Path | None) -> list[str]:
    if path is None or not path.exists():
        return []
    return [
        line.strip()
        for line in path.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


def manifest(
    zip_path: Path,
    *,
    kind: str,
    recipe_hash: str,
    package_libs: list[Path],
    shared_libs_file: Path | None,
    flags_file: Path | None,
    build_seconds: float,
    reused_runtime: bool,
) -> dict[str, object]:
    env = os.environ
    requested = [p.split("==")[0] for p in env.get("RLAYER_PACKAGES", "").split()]
    with zipfile.ZipFile(zip_path) as zf:
        files = [i for i in zf.infolist() if not i.is_dir()]
    packages = installed_packages(package_libs)
    nodes = needed_versions(zip_path)
    data: dict[str, object] = {
        "kind": kind,
        "layer_name": env[
            "RLAYER_RUNTIME_LAYER_NAME" if kind == "runtime" else "RLAYER_PACKAGES_LAYER_NAME"
        ],
        "zip_name": zip_path.name,
        "r_version": env["RLAYER_R_VERSION"],
        "architecture": env["RLAYER_ARCH"],
        "recipe_hash": recipe_hash,
        "build_root": env["RLAYER_BUILD_OS"],
        "needs_glibc": newest(nodes, "GLIBC_"),
        "needs_glibcxx": newest(nodes, "GLIBCXX_"),
        "packages": packages,
        "pulled_in_by": pulled_in_by(package_libs, requested) if kind == "packages" else {},
        "shared_libraries": sorted(set(_lines(shared_libs_file))),
        "file_count": len(files),
        "zipped_bytes": zip_path.stat().st_size,
        "unzipped_bytes": sum(i.file_size for i in files),
        "sha256": sha256_of(zip_path),
        "configure_flags": _lines(flags_file),
        "build_seconds": round(build_seconds, 1),
        "reused_runtime": reused_runtime,
    }
    assert tuple(data) == MANIFEST_FIELDS
    return data


def write_json(data: dict[str, object], out: Path) -> None:
    tmp = out.with_name(out.name + ".part")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    tmp.replace(out)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="layerzip.py")
    sub = parser.add_subparsers(dest="cmd", required=True)
    z = sub.add_parser("zip")
    z.add_argument("root", type=Path)
    z.add_argument("out", type=Path)
    z.add_argument("paths", nargs="+")
    m = sub.add_parser("manifest")
    m.add_argument("zip", type=Path)
    m.add_argument("kind", choices=("runtime", "packages"))
    m.add_argument("out", type=Path)
    m.add_argument("--recipe-hash", required=True)
    m.add_argument("--packages-lib", type=Path, action="append", default=[])
    m.add_argument("--shared-libs", type=Path)
    m.add_argument("--configure-flags", type=Path)
    m.add_argument("--build-seconds", type=float, default=0.0)
    m.add_argument("--reused-runtime", action="store_true")
    o = sub.add_parser("os-libs")
    o.add_argument("table", type=Path)
    o.add_argument("target")
    r = sub.add_parser("mark-reused", help="set reused_runtime in an existing manifest")
    r.add_argument("manifest", type=Path)
    args = parser.parse_args(argv)

    if args.cmd == "zip":
        write_zip(args.root, args.out, args.paths)
    elif args.cmd == "manifest":
        data = manifest(
            args.zip,
            kind=args.kind,
            recipe_hash=args.recipe_hash,
            package_libs=args.packages_lib,
            shared_libs_file=args.shared_libs,
            flags_file=args.configure_flags,
            build_seconds=args.build_seconds,
            reused_runtime=args.reused_runtime,
        )
        write_json(data, args.out)
    elif args.cmd == "os-libs":
        sys.stdout.write("".join(f"{name}\n" for name in os_libs(args.table, args.target)))
    else:
        data = json.loads(args.manifest.read_text())
        data["reused_runtime"] = True
        write_json(data, args.manifest)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
