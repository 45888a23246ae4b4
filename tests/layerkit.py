"""Crafted layer artifacts for tests: real zips, manifests that match them, and ways to
break exactly one thing at a time.

Two flavours of runtime layer:
- ``synthetic_runtime``: the /opt layout with stand-in files (an ELF header for R's
  binary, DESCRIPTIONs) -- enough for the validator, not runnable;
- ``built_runtime``: runnable, on Lambda too -- a real runtime layer, R compiled in the
  build root by the local build backend (once per recipe; later sessions restore it from
  the build cache in seconds). The canary runs on it for real, in the Lambda-shaped root.
  Packages layers take the host's installed packages (Debian's, built for the same R).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import json
import shutil
import stat
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from chalicelib.lambda_os import newest
from chalicelib.models import Architecture, BuildSpec, LayerManifest
from chalicelib.pipeline.abi import ElfUnreadable, is_elf, read_elf
from chalicelib.pipeline.artifacts import LayerArtifact

REPO = Path(__file__).resolve().parents[1]
HOST_R_HOME = Path("/usr/lib/R")
HOST_SITE_LIBRARY = HOST_R_HOME / "site-library"


# The R the built runtime layer holds (what `make local-sources` prepares).
HOST_R_VERSION = "4.2.2"
ZIP_DATE = (1980, 1, 1, 0, 0, 0)
RECIPE_HASH = "recipe0123456789abcdef"
BUILD_ROOT = "debian-bullseye-test"
ELF_MACHINE = {Architecture.X86_64: 62, Architecture.ARM64: 183}

Kind = Literal["runtime", "packages"]


@dataclass(frozen=True)
class Entry:
    name: str
    data: bytes = b""
    mode: int = 0o644
    symlink: bool = False
    # Instead of data: this many zero bytes, streamed (huge but compressing to little).
    zeros: int = 0

    @property
    def is_dir(self) -> bool:
        return self.name.endswith("/")


def make_zip(entries: Iterable[Entry]) -> bytes:
    buf = io.BytesIO()
    # Level 1: the huge all-zero entries of the size tests compress fast and still tiny.
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for e in entries:
            info = zipfile.ZipInfo(e.name, date_time=ZIP_DATE)
            info.create_system = 3  # Unix: the high bits of external_attr are the mode
            kind = stat.S_IFLNK if e.symlink else stat.S_IFDIR if e.is_dir else stat.S_IFREG
            info.external_attr = (kind | e.mode) << 16
            info.compress_type = zipfile.ZIP_STORED if e.is_dir else zipfile.ZIP_DEFLATED
            if e.zeros:
                chunk = bytes(1 << 20)
                with zf.open(info, "w", force_zip64=True) as out:
                    for start in range(0, e.zeros, len(chunk)):
                        out.write(chunk[: min(len(chunk), e.zeros - start)])
            else:
                zf.writestr(info, e.data)
    return buf.getvalue()


def elf_header(arch: Architecture) -> bytes:
    """The first 64 bytes of a little-endian ELF64 executable for ``arch``."""
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
    header = ident + (2).to_bytes(2, "little") + ELF_MACHINE[arch].to_bytes(2, "little")
    return header + bytes(64 - len(header))


def description(package: str, version: str, r_version: str = "4.2.2") -> bytes:
    return (
        f"Package: {package}\nVersion: {version}\nTitle: {package} for tests\n"
        f"License: MIT\nBuilt: R {r_version}; x86_64-pc-linux-gnu; 2024-01-01 00:00:00 UTC; "
        "unix\n"
    ).encode()


def synthetic_runtime(spec: BuildSpec) -> list[Entry]:
    return [
        Entry("bootstrap", b"#!/bin/sh\nexec /opt/R/bin/Rscript /opt/runtime/runtime.R\n", 0o755),
        Entry("runtime/"),
        Entry("runtime/runtime.R", b"# the loop\n"),
        Entry("runtime/native.so", elf_header(spec.architecture) + b"\0" * 64, 0o755),
        Entry("R/bin/Rscript", elf_header(spec.architecture) + b"\0" * 64, 0o755),
        Entry("R/lib/R/bin/exec/R", elf_header(spec.architecture) + b"\0" * 64, 0o755),
        Entry("R/lib/R/library/base/DESCRIPTION", description("base", spec.r_version)),
        Entry("R/lib/R/library/jsonlite/DESCRIPTION", description("jsonlite", "1.8.4")),
        Entry("lib/libgfortran.so.5", b"\0" * 128, 0o755),
        Entry("lib/libgfortran.so", b"libgfortran.so.5", 0o777, symlink=True),
    ]


def _tree(root: Path, prefix: str) -> list[Entry]:
    entries = []
    for path in sorted(root.rglob("*")):
        if path.is_file():
            mode = path.stat().st_mode & 0o777
            entries.append(
                Entry(f"{prefix}{path.relative_to(root).as_posix()}", path.read_bytes(), mode)
            )
    return entries


@functools.lru_cache(maxsize=1)
def built_runtime() -> tuple[list[Entry], LayerManifest, bytes]:
    """The entries and manifest of a real runtime layer for R HOST_R_VERSION (see above)."""
    from chalicelib.builders.base import BuildState
    from chalicelib.settings import get_settings
    from rlayer.builders.local import LocalBuildBackend
    from rlayer.builders.sources import ensure_local_sources

    sources = ensure_local_sources()
    settings = get_settings().model_copy(
        update={"r_source": sources.r_source, "cran_repo": sources.cran_repo}
    )
    work = Path(tempfile.mkdtemp(prefix="rlayer-test-runtime-"))
    backend = LocalBuildBackend(settings, work_root=work)
    ref = backend.start_build("test-runtime", BuildSpec(r_version=HOST_R_VERSION))
    deadline = time.monotonic() + 45 * 60
    while (progress := backend.check_build(ref)).state is BuildState.IN_PROGRESS:
        assert time.monotonic() < deadline, "the runtime layer build took too long"
        time.sleep(0.5)
    assert progress.state is BuildState.SUCCEEDED, progress.reason
    out = Path(progress.artifact_location or "")
    manifest = LayerManifest.model_validate_json((out / "runtime.manifest.json").read_text())
    entries = []
    with zipfile.ZipFile(out / "runtime.zip") as zf:
        for info in zf.infolist():
            mode = info.external_attr >> 16
            entries.append(
                Entry(
                    info.filename,
                    b"" if info.is_dir() else zf.read(info),
                    stat.S_IMODE(mode),
                    symlink=stat.S_ISLNK(mode),
                )
            )
    data = (out / "runtime.zip").read_bytes()
    shutil.rmtree(work, ignore_errors=True)
    return entries, manifest, data


def host_package(name: str) -> list[Entry]:
    """An installed package of the host, for the packages layer's site library."""
    return _tree(HOST_SITE_LIBRARY / name, f"packages/library/{name}/")


def broken_package(name: str, version: str, r_version: str) -> list[Entry]:
    """A package that has a DESCRIPTION (so it validates) but does not load."""
    desc = description(name, version, r_version)
    return [Entry(f"packages/library/{name}/DESCRIPTION", desc)]


@dataclass
class Layer:
    kind: Kind
    entries: list[Entry]
    packages: dict[str, str] = field(default_factory=dict)
    # Manifest fields to override after measuring (to make it lie).
    overrides: dict[str, object] = field(default_factory=dict)
    zip_bytes: bytes | None = None  # replaces the zip built from entries
    manifest_bytes: bytes | None = None  # replaces the manifest
    _zip: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def zip(self) -> bytes:
        if self.zip_bytes is not None:
            return self.zip_bytes
        if self._zip is None:
            self._zip = make_zip(self.entries)
        return self._zip

    def _needs(self) -> dict[str, str | None]:
        """needs_glibc / needs_glibcxx as a build would write them for these entries."""
        nodes: list[str] = []
        for e in self.entries:
            if not e.symlink and is_elf(e.data):
                with contextlib.suppress(ElfUnreadable):
                    elf = read_elf(f"/opt/{e.name}", e.data)
                    nodes += [n for ns in elf.verneed.values() for n in ns]
        return {"needs_glibc": newest(nodes, "GLIBC_"), "needs_glibcxx": newest(nodes, "GLIBCXX_")}

    def manifest(self, spec: BuildSpec) -> LayerManifest:
        data = self.zip()
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                infos = zf.infolist()
        except zipfile.BadZipFile:
            infos = []
        fields: dict[str, object] = {
            "kind": self.kind,
            "layer_name": spec.runtime_layer_name
            if self.kind == "runtime"
            else spec.packages_layer_name,
            "zip_name": f"{self.kind}.zip",
            "r_version": spec.r_version,
            "architecture": spec.architecture,
            "recipe_hash": RECIPE_HASH,
            "build_root": BUILD_ROOT,
            **self._needs(),
            "packages": self.packages,
            "file_count": sum(1 for i in infos if not i.is_dir()),
            "zipped_bytes": len(data),
            "unzipped_bytes": sum(i.file_size for i in infos),
            "sha256": hashlib.sha256(data).hexdigest(),
            "build_seconds": 1.5,
        }
        fields.update(self.overrides)
        return LayerManifest.model_validate(fields)


@dataclass
class Artifacts:
    """What a build leaves behind: ``<kind>.zip`` and ``<kind>.manifest.json`` per layer."""

    spec: BuildSpec
    layers: list[Layer]

    @classmethod
    def synthetic(cls, spec: BuildSpec, versions: dict[str, str] | None = None) -> Artifacts:
        versions = versions or {p.name: p.version or "1.0.0" for p in spec.packages}
        runtime = Layer("runtime", synthetic_runtime(spec), packages={"jsonlite": "1.8.4"})
        layers = [runtime]
        if spec.packages:
            entries = [Entry("packages/library/")]
            for name, version in versions.items():
                entries.append(
                    Entry(
                        f"packages/library/{name}/DESCRIPTION",
                        description(name, version, spec.r_version),
                    )
                )
                entries.append(Entry(f"packages/library/{name}/R/{name}", b"code", 0o644))
            layers.append(Layer("packages", entries, packages=versions))
        return cls(spec, layers)

    @classmethod
    def host(cls, spec: BuildSpec, broken: dict[str, str] | None = None) -> Artifacts:
        """Runnable layers (the built runtime, the host's packages); ``broken`` packages
        validate but fail to load."""
        entries, built, zip_bytes = built_runtime()
        overrides = {"needs_glibc": built.needs_glibc, "needs_glibcxx": built.needs_glibcxx}
        runtime = Layer(
            "runtime",
            entries,
            packages={"jsonlite": built.packages["jsonlite"]},
            overrides=overrides,
            zip_bytes=zip_bytes,
        )
        layers = [runtime]
        if spec.packages:
            entries = []
            versions: dict[str, str] = {}
            for pkg in spec.packages:
                if broken and pkg.name in broken:
                    entries += broken_package(pkg.name, broken[pkg.name], spec.r_version)
                    versions[pkg.name] = broken[pkg.name]
                else:
                    entries += host_package(pkg.name)
                    versions[pkg.name] = host_version(pkg.name)
            layers.append(Layer("packages", entries, packages=versions))
        return cls(spec, layers)

    def layer(self, kind: Kind) -> Layer:
        return next(layer for layer in self.layers if layer.kind == kind)

    def with_layer(self, kind: Kind, **changes: object) -> Artifacts:
        if "entries" in changes:
            changes.setdefault("zip_bytes", None)  # the zip is made from the new entries
        layers = [replace(la, **changes) if la.kind == kind else la for la in self.layers]  # type: ignore[arg-type]
        return Artifacts(self.spec, layers)

    def files(self) -> dict[str, bytes]:
        out: dict[str, bytes] = {}
        for layer in self.layers:
            out[f"{layer.kind}.zip"] = layer.zip()
            out[f"{layer.kind}.manifest.json"] = (
                layer.manifest_bytes
                or json.dumps(layer.manifest(self.spec).model_dump(mode="json")).encode()
            )
        return out

    def inputs(self) -> list[LayerArtifact]:
        """What ValidateArtifact hands the validator: each layer's manifest and zip."""
        files = self.files()
        return [
            LayerArtifact(
                kind=layer.kind,
                manifest=files[f"{layer.kind}.manifest.json"],
                zip_file=io.BytesIO(files[f"{layer.kind}.zip"]),
                expected_layer_name=self.spec.runtime_layer_name
                if layer.kind == "runtime"
                else self.spec.packages_layer_name,
            )
            for layer in self.layers
        ]

    def write(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        for name, data in self.files().items():
            (directory / name).write_bytes(data)
        return directory


def host_version(name: str) -> str:
    """The version of a package in the host R's site library (what host layers carry)."""
    for line in (HOST_SITE_LIBRARY / name / "DESCRIPTION").read_text().splitlines():
        if line.startswith("Version:"):
            return line.split(":", 1)[1].strip()
    raise LookupError(name)


# ---- one broken thing per case: (mutation, a phrase the ArtifactInvalidError must contain)

CASE_SPEC = BuildSpec(r_version="4.2.2", packages=["jsonlite", "digest==0.6.33"])  # type: ignore[arg-type]


def _edit(kind: Kind, fn: Callable[[list[Entry]], list[Entry]]) -> Mutation:
    def mutate(a: Artifacts) -> Artifacts:
        return a.with_layer(kind, entries=fn(list(a.layer(kind).entries)))

    return mutate


def _drop(kind: Kind, name: str) -> Mutation:
    return _edit(kind, lambda es: [e for e in es if e.name != name])


def _add(kind: Kind, *entries: Entry) -> Mutation:
    return _edit(kind, lambda es: [*es, *entries])


def _change(kind: Kind, name: str, **changes: object) -> Mutation:
    return _edit(kind, lambda es: [replace(e, **changes) if e.name == name else e for e in es])  # type: ignore[arg-type]


def _override(kind: Kind, **fields: object) -> Mutation:
    return lambda a: a.with_layer(kind, overrides={**a.layer(kind).overrides, **fields})


def _corrupt_crc(a: Artifacts) -> Artifacts:
    # Flip one byte of a stored entry's data: the zip still opens, its CRC no longer holds.
    payload = b"R_HOME/bin/exec/R stand-in payload " * 4
    entry = Entry("R/lib/R/doc/CRC-CHECK", payload)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        with zipfile.ZipFile(io.BytesIO(make_zip(a.layer("runtime").entries))) as src:
            for info in src.infolist():
                zf.writestr(info, src.read(info))
        info = zipfile.ZipInfo(entry.name, date_time=ZIP_DATE)
        info.compress_type = zipfile.ZIP_STORED
        zf.writestr(info, entry.data)
    data = bytearray(buf.getvalue())
    at = data.index(payload) + 3
    data[at] ^= 0xFF
    return a.with_layer("runtime", zip_bytes=bytes(data))


def _drop_layer(kind: Kind) -> Mutation:
    return lambda a: Artifacts(a.spec, [la for la in a.layers if la.kind != kind])


def _too_big(a: Artifacts) -> Artifacts:
    return _add("packages", Entry("packages/library/digest/data/huge.bin", zeros=258 * 2**20))(a)


Mutation = Callable[[Artifacts], Artifacts]
BROKEN: dict[str, tuple[Mutation, str]] = {
    "zip_does_not_open": (
        lambda a: a.with_layer("runtime", zip_bytes=b"PK\x03\x04 this is not a zip"),
        "runtime.zip: does not open as a zip file",
    ),
    "crc_mismatch": (_corrupt_crc, "entry 'R/lib/R/doc/CRC-CHECK' is corrupt"),
    "absolute_path": (_add("runtime", Entry("/etc/cron.d/rlayer", b"x")), "is an absolute path"),
    "dot_dot": (_add("packages", Entry("packages/../../etc/passwd", b"x")), "contains '..'"),
    "symlink_outside_relative": (
        _add("runtime", Entry("lib/libssl.so", b"../../etc/ssl/libssl.so", 0o777, symlink=True)),
        "symlink 'lib/libssl.so' points outside the layer",
    ),
    "symlink_outside_absolute": (
        _add("runtime", Entry("lib/libz.so", b"/usr/lib/libz.so.1", 0o777, symlink=True)),
        "symlink 'lib/libz.so' points outside the layer",
    ),
    "bootstrap_missing": (_drop("runtime", "bootstrap"), "bootstrap is missing"),
    "bootstrap_not_executable": (
        _change("runtime", "bootstrap", mode=0o644),
        "bootstrap is not executable",
    ),
    "r_binary_missing": (_drop("runtime", "R/lib/R/bin/exec/R"), "R/lib/R/bin/exec/R is missing"),
    "rscript_not_executable": (
        _change("runtime", "R/bin/Rscript", mode=0o644),
        "R/bin/Rscript is not executable",
    ),
    "runtime_dir_missing": (
        _edit("runtime", lambda es: [e for e in es if not e.name.startswith("runtime/")]),
        "runtime/runtime.R (the Runtime API loop) is missing",
    ),
    "native_part_missing": (
        _drop("runtime", "runtime/native.so"),
        "runtime/native.so (the Runtime API loop) is missing",
    ),
    "package_not_installed": (
        _drop("packages", "packages/library/digest/DESCRIPTION"),
        "digest has no DESCRIPTION",
    ),
    "package_version_differs_from_manifest": (
        _change(
            "packages",
            "packages/library/digest/DESCRIPTION",
            data=description("digest", "0.6.31"),
        ),
        "digest is version '0.6.31' but the manifest says 0.6.33",
    ),
    "unzipped_total_over_lambda_limit": (_too_big, "exceed Lambda's 262,144,000 byte limit"),
    "manifest_sha256_differs": (
        _override("runtime", sha256="0" * 64),
        "runtime.manifest.json: sha256 is '000",
    ),
    "manifest_zipped_bytes_differ": (
        _override("packages", zipped_bytes=1),
        "packages.manifest.json: zipped_bytes is 1 but",
    ),
    "manifest_unzipped_bytes_differ": (
        _override("runtime", unzipped_bytes=7),
        "runtime.manifest.json: unzipped_bytes is 7 but",
    ),
    "manifest_file_count_differs": (
        _override("packages", file_count=999),
        "packages.manifest.json: file_count is 999 but",
    ),
    "manifest_invalid": (
        lambda a: a.with_layer("runtime", manifest_bytes=b'{"kind": "runtime"}'),
        "runtime.manifest.json: not a valid manifest",
    ),
    "manifest_r_version_differs": (
        _override("runtime", r_version="4.3.0"),
        "r_version is '4.3.0', the build was for '4.2.2'",
    ),
    "manifest_architecture_differs": (
        _override("packages", architecture="arm64"),
        "architecture is 'arm64', the build was for 'x86_64'",
    ),
    "r_is_another_version": (
        _change(
            "runtime",
            "R/lib/R/library/base/DESCRIPTION",
            data=description("base", "4.1.3"),
        ),
        "R is version '4.1.3' (base/DESCRIPTION), not 4.2.2",
    ),
    "r_built_for_another_architecture": (
        _change(
            "runtime",
            "R/lib/R/bin/exec/R",
            data=elf_header(Architecture.ARM64) + bytes(64),
        ),
        "R/lib/R/bin/exec/R: ELF machine is arm64, the build is for x86_64",
    ),
    "packages_layer_missing": (
        _drop_layer("packages"),
        "packages.zip: missing although packages were requested",
    ),
}
