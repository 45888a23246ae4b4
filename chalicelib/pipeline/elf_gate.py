"""The ABI gate (chalicelib.pipeline.abi) over a build's layers as Lambda merges them at
/opt, and each manifest's needs_glibc / needs_glibcxx against what the gate read."""

from __future__ import annotations

import stat
import zipfile
import zlib
from collections.abc import Sequence

from chalicelib.lambda_os import LambdaOS, newest
from chalicelib.models import BuildSpec
from chalicelib.pipeline.abi import check_abi, is_elf
from chalicelib.pipeline.layer_view import LayerView, entry_mode


def elf_problems(
    spec: BuildSpec, target: LambdaOS, opened: Sequence[LayerView]
) -> list[tuple[str, str]]:
    """The ABI gate (chalicelib.pipeline.abi) over the layers as Lambda merges them at /opt,
    and the manifests' build_root / needs_glibc / needs_glibcxx against what it read."""
    elf_data: dict[str, bytes] = {}
    files: list[str] = []
    links: dict[str, str] = {}
    owner: dict[str, LayerView] = {}
    problems: list[tuple[str, str]] = []

    def add(where: str, reason: str) -> None:
        problems.append((where, reason))

    for o in opened:
        if o.zf is None:
            continue
        for name, info in o.infos.items():
            if info.is_dir():
                continue
            path = f"/opt/{name}"
            owner[path] = o
            try:
                if stat.S_ISLNK(entry_mode(info)):
                    links[path] = o.zf.read(info).decode("utf-8", "replace")
                    continue
                files.append(path)
                with o.zf.open(info) as entry:
                    if is_elf(entry.read(4)):
                        elf_data[path] = o.zf.read(info)
            except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, OSError):
                continue  # reported by the integrity check
    report = check_abi(target, spec.architecture, elf_data, files, links)
    for path, reason in report.problems:
        add(f"{owner[path].zip_name}: {path.removeprefix('/opt/')}", reason)
    for o in opened:
        if o.manifest is None or o.zf is None:
            continue
        nodes = [n for p, ns in report.nodes.items() if owner[p] is o for n in ns]
        where = f"{o.kind}.manifest.json"
        for name, claimed, actual in (
            ("needs_glibc", o.manifest.needs_glibc, newest(nodes, "GLIBC_")),
            ("needs_glibcxx", o.manifest.needs_glibcxx, newest(nodes, "GLIBCXX_")),
        ):
            if claimed != actual:
                add(where, f"{name} is {claimed!r} but its ELF files need {actual!r}")
    return problems
