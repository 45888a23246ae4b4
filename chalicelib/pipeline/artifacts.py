"""What makes a built layer acceptable, checked on the bytes (no AWS, no disk needed).

Each failed check is a sentence naming the file and the reason; ``validate_artifacts``
raises one ArtifactInvalidError listing them all, so a broken build says everything that is
wrong with it at once. The /opt layout these checks enforce is the contract between the
runtime, the build scripts and this validator:

    bootstrap                     exec bit, at the root of the runtime layer
    runtime/                      the Runtime API loop
    R/bin/Rscript                 exec bit (R installed with --prefix=/opt/R)
    R/lib/R/bin/exec/R            the R binary: an ELF file for the requested architecture
    R/lib/R/library/base          its DESCRIPTION says the R version
    R/lib/R/library/jsonlite      the loop needs it
    packages/library/<pkg>        the packages layer's site library

Manifest figures are checked against what is measured: ``sha256`` and ``zipped_bytes`` of
the zip file, ``unzipped_bytes`` the sum of the entries' sizes, ``file_count`` the number
of entries that are not directories. Two families of checks live beside this module: the
ELF files against the target Lambda OS (``elf_gate``, over ``abi``) and the requested
packages (``package_checks``); both read the layers through ``layer_view``.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
import stat
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import BinaryIO

from pydantic import ValidationError

from chalicelib.errors import ArtifactInvalidError
from chalicelib.lambda_os import LambdaOS
from chalicelib.lambda_os import target as default_target
from chalicelib.models import BuildSpec, LayerManifest
from chalicelib.pipeline.elf_gate import elf_problems
from chalicelib.pipeline.layer_view import R_LIBRARY, Kind, entry_mode, read_description
from chalicelib.pipeline.package_checks import package_problems

# Function plus all its layers, unzipped (Lambda quota).
LAMBDA_UNZIPPED_LIMIT = 262_144_000
# Room left for the user's own function code next to our layers.
FUNCTION_CODE_MARGIN = 5 * 1024 * 1024
BOOTSTRAP = "bootstrap"
# The Runtime API loop and its C part (runtime/bootstrap/runtime.R, native/).
LOOP_FILES = ("runtime/runtime.R", "runtime/native.so")
RSCRIPT = "R/bin/Rscript"
R_BINARY = "R/lib/R/bin/exec/R"
# The loop's own dependency, always in the runtime layer.
RUNTIME_PACKAGES = ("jsonlite",)
_DRIVE_RE = re.compile(r"^[A-Za-z]:")
_CHUNK = 1 << 20


@dataclass
class LayerArtifact:
    """One layer as the build left it: its manifest's bytes and its zip (seekable)."""

    kind: Kind
    manifest: bytes
    zip_file: BinaryIO
    # The layer name the build was told to write into the manifest.
    expected_layer_name: str


@dataclass
class ValidatedLayer:
    kind: Kind
    manifest: LayerManifest
    sha256: str
    zipped_bytes: int
    unzipped_bytes: int
    file_count: int


@dataclass
class _Opened:
    artifact: LayerArtifact
    manifest: LayerManifest | None
    sha256: str
    zipped_bytes: int
    zf: zipfile.ZipFile | None = None
    infos: dict[str, zipfile.ZipInfo] = field(default_factory=dict)
    unzipped_bytes: int = 0
    file_count: int = 0

    @property
    def kind(self) -> Kind:
        return self.artifact.kind

    @property
    def zip_name(self) -> str:
        return f"{self.artifact.kind}.zip"


class _Problems:
    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, where: str, reason: str) -> None:
        self.items.append(f"{where}: {reason}")


def validate_artifacts(
    spec: BuildSpec,
    artifacts: Sequence[LayerArtifact],
    *,
    margin: int = FUNCTION_CODE_MARGIN,
    limit: int = LAMBDA_UNZIPPED_LIMIT,
    target: LambdaOS | None = None,
) -> list[ValidatedLayer]:
    """Check every layer of a build; return what was measured or raise with every reason."""
    problems = _Problems()
    kinds = [a.kind for a in artifacts]
    if "runtime" not in kinds:
        problems.add("runtime.zip", "missing: every build produces a runtime layer")
    if len(set(kinds)) != len(kinds):
        problems.add("artifacts", "a layer kind appears twice")
    opened = [_open(a, problems) for a in artifacts]
    total = sum(o.unzipped_bytes for o in opened)
    if total + margin > limit:
        problems.add(
            "layers",
            f"{total:,} bytes unzipped plus {margin:,} for the function code exceed "
            f"Lambda's {limit:,} byte limit",
        )
    else:
        # Decompress only once the sizes are known to be sane (a zip bomb stops above).
        for o in opened:
            _check_integrity(o, problems)
        for where, reason in elf_problems(spec, target or default_target(), opened):
            problems.add(where, reason)
    for o in opened:
        _check_manifest(spec, o, problems)
        if o.zf is not None and o.artifact.kind == "runtime":
            _check_runtime(spec, o, problems)
        if o.zf is not None:
            _check_layout(o, problems)
    for where, reason in package_problems(spec, opened):
        problems.add(where, reason)
    for o in opened:
        if o.zf is not None:
            o.zf.close()
    if problems.items:
        raise ArtifactInvalidError("artifact invalid: " + "; ".join(problems.items))
    return [
        ValidatedLayer(
            kind=o.artifact.kind,
            manifest=o.manifest,
            sha256=o.sha256,
            zipped_bytes=o.zipped_bytes,
            unzipped_bytes=o.unzipped_bytes,
            file_count=o.file_count,
        )
        for o in opened
        if o.manifest is not None
    ]


def _measure(stream: BinaryIO) -> tuple[str, int]:
    stream.seek(0)
    digest = hashlib.sha256()
    size = 0
    while chunk := stream.read(_CHUNK):
        digest.update(chunk)
        size += len(chunk)
    stream.seek(0)
    return digest.hexdigest(), size


def _open(artifact: LayerArtifact, problems: _Problems) -> _Opened:
    manifest_name = f"{artifact.kind}.manifest.json"
    try:
        manifest: LayerManifest | None = LayerManifest.model_validate_json(artifact.manifest)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        problems.add(manifest_name, f"not a valid manifest ({where}: {first['msg']})")
        manifest = None
    sha256, size = _measure(artifact.zip_file)
    o = _Opened(artifact=artifact, manifest=manifest, sha256=sha256, zipped_bytes=size)
    try:
        o.zf = zipfile.ZipFile(artifact.zip_file)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError) as exc:
        problems.add(o.zip_name, f"does not open as a zip file ({exc})")
        return o
    for info in o.zf.infolist():
        name = info.filename
        reason = _unsafe_name(name)
        if reason:
            problems.add(o.zip_name, f"entry {name!r} {reason}")
        if name in o.infos:
            problems.add(o.zip_name, f"entry {name!r} appears twice")
        o.infos[name] = info
        o.unzipped_bytes += info.file_size
        if not info.is_dir():
            o.file_count += 1
    return o


def _unsafe_name(name: str) -> str | None:
    if name.startswith(("/", "\\")) or _DRIVE_RE.match(name):
        return "is an absolute path"
    if "\\" in name:
        return "contains a backslash"
    if ".." in name.split("/"):
        return "contains '..'"
    return None


def _check_integrity(o: _Opened, problems: _Problems) -> None:
    if o.zf is None:
        return
    for info in o.infos.values():
        try:
            # Reads every byte; zipfile checks the CRC at the end of each entry.
            with o.zf.open(info) as entry:
                while entry.read(_CHUNK):
                    pass
        # NotImplementedError is zipfile's answer to a compression method it cannot read
        # (neither can Lambda's unzip): that entry is as unusable as a corrupt one.
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, OSError) as exc:
            problems.add(o.zip_name, f"entry {info.filename!r} is corrupt ({exc})")
            continue
        if stat.S_ISLNK(entry_mode(info)):
            target = o.zf.read(info).decode("utf-8", "replace")
            if not _link_inside_opt(info.filename, target):
                problems.add(
                    o.zip_name,
                    f"symlink {info.filename!r} points outside the layer ({target!r})",
                )


def _link_inside_opt(name: str, target: str) -> bool:
    # Layers unzip into /opt, where Lambda merges them; a link must resolve inside it.
    base = posixpath.dirname(posixpath.join("/opt", name))
    resolved = posixpath.normpath(posixpath.join(base, target))
    return resolved == "/opt" or resolved.startswith("/opt/")


def _check_manifest(spec: BuildSpec, o: _Opened, problems: _Problems) -> None:
    m = o.manifest
    if m is None:
        return
    where = f"{o.artifact.kind}.manifest.json"
    requested: list[tuple[str, object, object]] = [
        ("kind", m.kind, o.artifact.kind),
        ("zip_name", m.zip_name, o.zip_name),
        ("layer_name", m.layer_name, o.artifact.expected_layer_name),
        ("r_version", m.r_version, spec.r_version),
        ("architecture", m.architecture.value, spec.architecture.value),
    ]
    for name, claimed, wanted in requested:
        if claimed != wanted:
            problems.add(where, f"{name} is {claimed!r}, the build was for {wanted!r}")
    measured: list[tuple[str, object, object]] = [
        ("sha256", m.sha256, o.sha256),
        ("zipped_bytes", m.zipped_bytes, o.zipped_bytes),
    ]
    if o.zf is not None:
        measured += [
            ("unzipped_bytes", m.unzipped_bytes, o.unzipped_bytes),
            ("file_count", m.file_count, o.file_count),
        ]
    for name, claimed, actual in measured:
        if claimed != actual:
            problems.add(where, f"{name} is {claimed!r} but the artifact has {actual!r}")


def _check_runtime(spec: BuildSpec, o: _Opened, problems: _Problems) -> None:
    zf = o.zf
    assert zf is not None
    for path in (BOOTSTRAP, RSCRIPT, R_BINARY):
        info = o.infos.get(path)
        if info is None or info.is_dir():
            problems.add(o.zip_name, f"{path} is missing")
        elif not entry_mode(info) & 0o100:
            problems.add(o.zip_name, f"{path} is not executable (mode {oct(entry_mode(info))})")
    for path in LOOP_FILES:
        info = o.infos.get(path)
        if info is None or info.is_dir():
            problems.add(o.zip_name, f"{path} (the Runtime API loop) is missing")
    base = read_description(o, f"{R_LIBRARY}base/DESCRIPTION")
    if base is None:
        problems.add(o.zip_name, f"{R_LIBRARY}base/DESCRIPTION is missing")
    elif base.get("Version") != spec.r_version:
        problems.add(
            o.zip_name,
            f"R is version {base.get('Version')!r} (base/DESCRIPTION), not {spec.r_version}",
        )
    for pkg in RUNTIME_PACKAGES:
        if read_description(o, f"{R_LIBRARY}{pkg}/DESCRIPTION") is None:
            problems.add(o.zip_name, f"{pkg}, which the runtime loop needs, is not installed")


# What each layer may put into /opt; anything else could shadow another layer's files.
TOP_LEVEL: dict[Kind, frozenset[str]] = {
    "runtime": frozenset({BOOTSTRAP, "runtime", "R", "lib"}),
    "packages": frozenset({"packages", "lib"}),
}


def _check_layout(o: _Opened, problems: _Problems) -> None:
    allowed = TOP_LEVEL[o.artifact.kind]
    stray = sorted({n.split("/")[0] for n in o.infos} - allowed)
    if stray:
        problems.add(
            o.zip_name, f"unexpected top-level entries {stray} (allowed: {sorted(allowed)})"
        )
