"""The ABI gate: would every ELF file of a build load on the target Lambda OS?

Each ELF file of the layers (as they lie merged at /opt) is read with pyelftools and checked:

- its machine is the requested architecture;
- every ``DT_NEEDED`` library is found in the layers (its own ``RUNPATH``/``RPATH`` inside
  /opt, /opt/lib, R's ``lib/``) or is one the target OS provides (``lambda_os.json``);
- every version node it needs from an OS library (``.gnu.version_r``: GLIBC_2.34,
  GLIBCXX_3.4.29, ...) is one the target's copy defines; from a bundled library, one that
  library defines.

One exception: the target's libcurl defines no version nodes at all, while Debian's libcurl
(what local builds link) tags every symbol CURL_OPENSSL_4. glibc then binds the versioned
references to the unversioned symbols; it prints "no version information available" only
when it checks versions verbosely, which it does for the objects loaded at program start and
not for ``dlopen``. So such a need is refused in a startup object (a program and the layer
libraries it needs) and accepted in a module R loads with ``dyn.load`` (modules/internet.so,
a package's shared object).
"""

from __future__ import annotations

import io
import posixpath
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from chalicelib.lambda_os import LambdaOS, newest
from chalicelib.models import Architecture

ELF_MAGIC = b"\x7fELF"
MACHINES = {"EM_X86_64": Architecture.X86_64, "EM_AARCH64": Architecture.ARM64}
OPT = "/opt"
# Where the loader looks for a layer's libraries: Lambda's LD_LIBRARY_PATH has /opt/lib, and
# R's etc/ldpaths puts R_HOME/lib first for every R process.
LAYER_LIB_DIRS = ("/opt/lib", "/opt/R/lib/R/lib")


@dataclass(frozen=True)
class ElfFile:
    path: str  # where it lies on Lambda: /opt/...
    machine: str
    is_program: bool  # has an interpreter (PT_INTERP): the loader starts it
    needed: tuple[str, ...]
    search_path: tuple[str, ...]  # RUNPATH/RPATH, $ORIGIN expanded
    verneed: dict[str, tuple[str, ...]]  # library -> version nodes needed from it
    verdef: tuple[str, ...]


class ElfUnreadable(Exception):
    pass


def is_elf(head: bytes) -> bool:
    return head[:4] == ELF_MAGIC


def read_elf(path: str, data: bytes) -> ElfFile:
    """Parse the dynamic-linking facts of one ELF file (raises ElfUnreadable)."""
    try:
        return _read_elf(path, data)
    # pyelftools reports a malformed file with many exception types (ELFError, construct's
    # stream errors, struct.error, IndexError, UnicodeDecodeError, ...): each means the same.
    except Exception as exc:
        raise ElfUnreadable(f"{type(exc).__name__}: {exc}") from exc


def _read_elf(path: str, data: bytes) -> ElfFile:
    # Imported here: every function of the one Chalice app imports this module, and only
    # ValidateArtifact reads ELF files (pyelftools costs 30 ms of each cold start).
    from elftools.elf.dynamic import DynamicSection
    from elftools.elf.elffile import ELFFile
    from elftools.elf.gnuversions import GNUVerDefSection, GNUVerNeedSection

    elf = ELFFile(io.BytesIO(data))
    machine = str(elf["e_machine"])
    is_program = any(seg["p_type"] == "PT_INTERP" for seg in elf.iter_segments())
    needed: list[str] = []
    search: list[str] = []
    verneed: dict[str, tuple[str, ...]] = {}
    verdef: list[str] = []
    origin = posixpath.dirname(path)
    for section in elf.iter_sections():
        if isinstance(section, DynamicSection):
            for tag in section.iter_tags():
                kind = tag.entry.d_tag
                # pyelftools sets a tag's string (needed, runpath, rpath) as an attribute
                # named after it, which its type hints cannot declare.
                if kind == "DT_NEEDED":
                    needed.append(str(tag.needed))  # type: ignore[attr-defined]
                elif kind in ("DT_RUNPATH", "DT_RPATH"):
                    attr = "runpath" if kind == "DT_RUNPATH" else "rpath"
                    value = str(vars(tag)[attr])
                    for entry in value.split(":"):
                        expanded = entry.replace("${ORIGIN}", origin).replace("$ORIGIN", origin)
                        search.append(posixpath.normpath(expanded))
        elif isinstance(section, GNUVerNeedSection):
            for need, auxes in section.iter_versions():
                verneed[str(need.name)] = tuple(str(aux.name) for aux in auxes)
        elif isinstance(section, GNUVerDefSection):
            for _verdef, auxes in section.iter_versions():
                names = [aux.name for aux in auxes]
                if names:
                    verdef.append(str(names[0]))
    return ElfFile(
        path=path,
        machine=machine,
        is_program=is_program,
        needed=tuple(needed),
        search_path=tuple(search),
        verneed=verneed,
        verdef=tuple(verdef),
    )


@dataclass
class AbiReport:
    problems: list[tuple[str, str]] = field(default_factory=list)  # (/opt path, reason)
    newest_glibc: str | None = None
    newest_glibcxx: str | None = None
    elf_files: int = 0
    # /opt path -> every version node that file needs (for per-layer figures).
    nodes: dict[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass
class _Layers:
    """The merged /opt: regular files, symlinks (path -> target) and the ELF files parsed."""

    files: set[str]
    links: dict[str, str]
    elves: dict[str, ElfFile]

    def resolve(self, path: str) -> str | None:
        for _ in range(40):  # like the kernel's symlink limit
            if path in self.files:
                return path
            target = self.links.get(path)
            if target is None:
                return None
            path = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
        return None

    def find(self, elf: ElfFile, name: str) -> str | None:
        """Where the loader finds ``name`` for ``elf`` inside /opt, or None."""
        if "/" in name:
            candidates = [posixpath.normpath(posixpath.join(posixpath.dirname(elf.path), name))]
        else:
            dirs = [d for d in elf.search_path if d == OPT or d.startswith(OPT + "/")]
            candidates = [f"{d}/{name}" for d in (*dirs, *LAYER_LIB_DIRS)]
        for candidate in candidates:
            found = self.resolve(candidate)
            if found is not None:
                return found
        return None


def check_abi(
    target: LambdaOS,
    architecture: Architecture,
    elf_data: Mapping[str, bytes],
    files: Iterable[str],
    links: Mapping[str, str],
) -> AbiReport:
    """Check the ELF files ``elf_data`` (/opt path -> bytes) of layers that hold ``files``
    and ``links`` (/opt path -> symlink target)."""
    report = AbiReport()
    layers = _Layers(set(files), dict(links), {})
    for path, data in sorted(elf_data.items()):
        try:
            layers.elves[path] = read_elf(path, data)
        except ElfUnreadable as exc:
            report.problems.append((path, f"not a readable ELF file ({exc})"))
    report.elf_files = len(layers.elves)
    startup = _startup_objects(layers)
    glibc: list[str] = []
    glibcxx: list[str] = []
    for elf in layers.elves.values():
        found = MACHINES.get(elf.machine)
        if found is not architecture:
            what = found.value if found else elf.machine
            report.problems.append(
                (elf.path, f"ELF machine is {what}, the build is for {architecture.value}")
            )
            continue
        for name in elf.needed:
            if layers.find(elf, name) is None and not target.provides(name):
                report.problems.append(
                    (
                        elf.path,
                        f"needs {name}, found neither in the layers (its RUNPATH, /opt/lib, "
                        f"R's lib/) nor among the libraries {target.name} provides",
                    )
                )
        report.nodes[elf.path] = tuple(n for ns in elf.verneed.values() for n in ns)
        for library, nodes in elf.verneed.items():
            glibc += [n for n in nodes if n.startswith("GLIBC_")]
            glibcxx += [n for n in nodes if n.startswith("GLIBCXX_")]
            report.problems += _version_problems(target, layers, elf, library, nodes, startup)
    report.newest_glibc = newest(glibc, "GLIBC_")
    report.newest_glibcxx = newest(glibcxx, "GLIBCXX_")
    return report


def _version_problems(
    target: LambdaOS,
    layers: _Layers,
    elf: ElfFile,
    library: str,
    nodes: tuple[str, ...],
    startup: set[str],
) -> list[tuple[str, str]]:
    bundled = layers.find(elf, library)
    if bundled is not None:
        provider = layers.elves.get(bundled)
        if provider is None:
            return []  # not an ELF file we could read: reported on its own
        return [
            (elf.path, f"needs version {node} of {library}, which {bundled} does not define")
            for node in nodes
            if node not in provider.verdef
        ]
    if not target.provides(library):
        return []  # reported as not found
    if target.defines_no_versions(library):
        if elf.path not in startup:
            return []  # dlopen'd: see the module docstring
        return [
            (
                elf.path,
                f"needs version {nodes[0]} of {library}, and {target.name}'s {library} defines "
                "no versions: the loader would warn on every start",
            )
        ]
    return [
        (elf.path, f"needs {node} from {library}; {target.describe(node)}")
        for node in nodes
        if not target.defines(library, node)
    ]


def _startup_objects(layers: _Layers) -> set[str]:
    """Programs and the layer libraries they load at start (DT_NEEDED, transitively)."""
    todo = [path for path, elf in layers.elves.items() if elf.is_program]
    seen: set[str] = set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        elf = layers.elves.get(path)
        if elf is None:
            continue
        for name in elf.needed:
            found = layers.find(elf, name)
            if found is not None:
                todo.append(found)
    return seen
