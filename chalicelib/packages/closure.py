"""The packages a request needs, from the repository's index, checked before any build.

A request names only the packages it wants. Their runtime closure (``Depends`` and
``Imports``, recursively) goes into the packages layer; ``LinkingTo`` packages (headers
such as BH or RcppEigen) are needed only while compiling and stay out of it. Everything
that would make the build fail later and can be known now is refused now, all problems in
one answer: unknown packages, pins the repository does not have, dependencies it lacks or
has at too old a version, packages that need a newer R, and system libraries Amazon Linux
2023 does not have.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict

from chalicelib.errors import RequestInvalidError
from chalicelib.models import PackageSpec, parse_r_version
from chalicelib.observability import logger
from chalicelib.packages.index import IndexEntry, PackageIndex, Requirement, version_key
from chalicelib.packages.system_libraries import PackageManager, SystemLibrary, libraries_for

REQUESTED = "(requested)"
# (package, the package that needs it or REQUESTED, the version it needs)
Root = tuple[str, str, Requirement | None]


class ClosureEntry(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    version: str
    pulled_in_by: tuple[str, ...]  # REQUESTED, or the packages that depend on it


class Closure(BaseModel):
    model_config = ConfigDict(frozen=True)

    runtime: tuple[ClosureEntry, ...]  # into the layer
    build_only: tuple[ClosureEntry, ...]  # LinkingTo: while compiling only
    libraries: tuple[SystemLibrary, ...]

    def os_packages(self, manager: PackageManager) -> tuple[str, ...]:
        """The OS packages the build installs for these libraries (dnf or apt names)."""
        return tuple(sorted({p for lib in self.libraries if (p := lib.os_package(manager))}))


class _Walk:
    def __init__(self, index: PackageIndex, pins: dict[str, str], r_version: str) -> None:
        self.index = index
        self.pins = pins
        self.r = ".".join(str(n) for n in parse_r_version(r_version))
        self.problems: list[str] = []
        self.versions: dict[str, str] = {}
        self.pulled: dict[str, list[str]] = {}

    def entry(self, name: str, wanted_by: str, need: Requirement | None) -> IndexEntry | None:
        entry = self.index.packages.get(name)
        if entry is None:
            if wanted_by == REQUESTED:
                self.problems.append(_unknown(name, self.index))
            else:
                self.problems.append(
                    f"{wanted_by} needs {name}, which the repository does not have"
                )
            return None
        version = self.pins.get(name, entry.version)
        if need is not None and not need.satisfied_by(version):
            self.problems.append(f"{wanted_by} needs {need}; the build would get {name} {version}")
        return entry

    def visit(self, roots: Sequence[Root], follow_linking: bool) -> None:
        queue: list[Root] = list(roots)
        while queue:
            name, wanted_by, need = queue.pop(0)
            self.pulled.setdefault(name, [])
            if wanted_by not in self.pulled[name]:
                self.pulled[name].append(wanted_by)
            if name in self.versions:
                if need is not None and not need.satisfied_by(self.versions[name]):
                    self.problems.append(
                        f"{wanted_by} needs {need}; the build would get {name} "
                        f"{self.versions[name]}"
                    )
                continue
            entry = self.entry(name, wanted_by, need)
            if entry is None:
                continue
            self.versions[name] = self.pins.get(name, entry.version)
            for r in entry.r_requirement():
                if not r.satisfied_by(self.r):
                    self.problems.append(
                        f"{name} {entry.version} needs R ({r.op} {r.version}); this build is "
                        f"R {self.r}"
                    )
            needs = entry.build_needs() if follow_linking else entry.runtime_needs()
            queue.extend((n.name, name, n) for n in needs)


def resolve(index: PackageIndex, specs: tuple[PackageSpec, ...], r_version: str) -> Closure:
    """The closure of ``specs``; RequestInvalidError (field ``packages``) listing every
    problem when the build could not succeed."""
    pins = {s.name: s.version for s in specs if s.version}
    problems = [p for s in specs if s.version and (p := _pin_problem(index, s))]
    walk = _Walk(index, pins, r_version)
    walk.visit([(s.name, REQUESTED, None) for s in specs], follow_linking=False)
    runtime = dict(walk.versions)
    # LinkingTo of every runtime package, with their own closure (Depends, Imports and
    # LinkingTo), less what the layer has anyway.
    linking = [(n.name, p, n) for p in runtime for n in index.packages[p].build_needs()]
    build = _Walk(index, pins, r_version)
    build.versions = dict(runtime)
    build.visit(linking, follow_linking=True)
    build.visit(
        [(n.name, p, n) for p in list(build.versions) for n in index.packages[p].runtime_needs()],
        follow_linking=False,
    )
    problems += walk.problems + build.problems
    libraries: dict[str, SystemLibrary] = {}
    for name in sorted(build.versions):
        found, recognised = libraries_for(index.packages[name])
        if not recognised:
            logger.warning(
                "unrecognised SystemRequirements",
                extra={
                    "package": name,
                    "system_requirements": index.packages[name].system_requirements,
                },
            )
        for lib in found:
            libraries[lib.library] = lib
            if not lib.in_al2023:
                problems.append(
                    f"{name} needs {lib.library}, which Amazon Linux 2023 (Lambda's "
                    "provided.al2023) does not have"
                )
    if problems:
        unique = list(dict.fromkeys(problems))
        raise RequestInvalidError("packages: " + "; ".join(unique), field="packages")
    return Closure(
        runtime=_entries(runtime, walk.pulled),
        build_only=_entries(
            {n: v for n, v in build.versions.items() if n not in runtime}, build.pulled
        ),
        libraries=tuple(libraries[k] for k in sorted(libraries)),
    )


def _entries(versions: dict[str, str], pulled: dict[str, list[str]]) -> tuple[ClosureEntry, ...]:
    return tuple(
        ClosureEntry(name=n, version=versions[n], pulled_in_by=tuple(pulled.get(n, ())))
        for n in sorted(versions, key=str.lower)
    )


def _unknown(name: str, index: PackageIndex) -> str:
    close = difflib.get_close_matches(name, list(index.packages), n=3, cutoff=0.75)
    lower = [n for n in index.packages if n.lower() == name.lower() and n != name]
    hint = lower or close
    suffix = f" (did you mean {', '.join(hint)}?)" if hint else ""
    return f"{name!r} is not in the repository{suffix}"


def _pin_problem(index: PackageIndex, spec: PackageSpec) -> str | None:
    entry = index.packages.get(spec.name)
    if entry is None or spec.version is None:
        return None  # unknown: reported by the walk
    have = index.versions(spec.name)
    if have is None:
        # The archive cannot be listed (CRAN over https): a pin of another version is the
        # build's to find in Archive/, and it fails naming the version if it is not there.
        return None
    if any(version_key(v) == version_key(spec.version) for v in have):
        return None
    return f"{spec} is not available; the repository has {spec.name} {', '.join(have)}"
