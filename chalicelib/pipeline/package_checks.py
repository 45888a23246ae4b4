"""The requested packages, checked in the layers that should hold them: each installed
(a DESCRIPTION), the version the manifest and any pin say, built for this R."""

from __future__ import annotations

import re
from collections.abc import Iterable

from chalicelib.models import BuildSpec
from chalicelib.pipeline.layer_view import R_LIBRARY, SITE_LIBRARY, LayerView, read_description

_BUILT_R_RE = re.compile(r"^R (\d+\.\d+)\.\d+")


def package_problems(spec: BuildSpec, opened: Iterable[LayerView]) -> list[tuple[str, str]]:
    found_problems: list[tuple[str, str]] = []

    def add(where: str, reason: str) -> None:
        found_problems.append((where, reason))

    by_kind = {o.kind: o for o in opened}
    runtime, packages = by_kind.get("runtime"), by_kind.get("packages")
    layer_missing = False
    for pkg in spec.packages:
        found: tuple[LayerView, dict[str, str]] | None = None
        for layer, library in ((packages, SITE_LIBRARY), (runtime, R_LIBRARY)):
            if layer is None or layer.zf is None:
                continue
            desc = read_description(layer, f"{library}{pkg.name}/DESCRIPTION")
            if desc is not None:
                found = (layer, desc)
                break
        if found is None:
            if packages is None and not layer_missing:
                # Packages the runtime layer holds (jsonlite) need no packages layer.
                add("packages.zip", "missing although packages were requested")
                layer_missing = True
            add("packages", f"{pkg.name} has no DESCRIPTION: it is not installed")
            continue
        layer, desc = found
        claimed = layer.manifest.packages.get(pkg.name) if layer.manifest else None
        where = layer.zip_name
        if claimed is None:
            add(f"{layer.kind}.manifest.json", f"{pkg.name} is not listed")
        elif desc.get("Version") != claimed:
            add(
                where,
                f"{pkg.name} is version {desc.get('Version')!r} but the manifest says {claimed}",
            )
        if pkg.version and desc.get("Version") != pkg.version:
            add(
                where,
                f"{pkg.name} is version {desc.get('Version')!r}, not the pinned {pkg.version}",
            )
        if desc.get("Package") != pkg.name:
            add(where, f"{pkg.name}/DESCRIPTION names package {desc.get('Package')!r}")
        built = _BUILT_R_RE.match(desc.get("Built", ""))
        wanted = ".".join(spec.r_version.split(".")[:2])
        if built and built.group(1) != wanted:
            add(where, f"{pkg.name} was built for R {built.group(1)}, not R {wanted}")
    return found_problems
