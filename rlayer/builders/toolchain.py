"""Which R versions can be compiled in a root no newer than Lambda's OS.

``buildspec/toolchain.txt`` holds the facts (the ceiling Lambda's OS sets, what each R
needs); the compile step checks the same table inside the root (``common.sh``,
``check_toolchain``). Here the local tools decide before any build: an R whose needs the
build root cannot meet, or that would need a toolchain newer than Lambda's OS, is refused
at the request with that reason instead of failing minutes into a compile.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from rlayer.builders.sources import REPO_ROOT

TABLE = REPO_ROOT / "buildspec" / "toolchain.txt"
_GUARD = re.compile(r"^\[(>=|<)(\d+(?:\.\d+){0,2})\]$")
_VERSION = re.compile(r"^\d+(?:\.\d+){0,2}$")


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


@dataclass(frozen=True)
class Need:
    guard: tuple[str, str] | None  # (">=" | "<", "4.4"), None: every R
    tool: str
    version: str
    why: str

    def applies(self, r_version: str) -> bool:
        if self.guard is None:
            return True
        op, bound = self.guard
        below = version_key(r_version) < version_key(bound)
        return below if op == "<" else not below


@dataclass(frozen=True)
class Table:
    ceilings: dict[str, tuple[str, str]]  # tool -> (version, why)
    needs: tuple[Need, ...]


def table_path() -> Path:
    # The tests point this at a table of their own (a future R with bigger needs).
    return Path(os.environ.get("RLAYER_TOOLCHAIN_TABLE") or TABLE)


def read_table(path: Path | None = None) -> Table:
    ceilings: dict[str, tuple[str, str]] = {}
    needs: list[Need] = []
    for number, raw in enumerate((path or table_path()).read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        words = line.split()
        guard = _GUARD.match(words[1]) if len(words) > 1 else None
        rest = words[2:] if guard else words[1:]
        if words[0] not in ("ceiling", "need") or len(rest) < 2 or not _VERSION.match(rest[1]):
            raise ValueError(f"{path or table_path()}:{number}: cannot read {raw!r}")
        if words[0] == "need" and words[1].startswith("[") and not guard:
            raise ValueError(f"{path or table_path()}:{number}: cannot read {raw!r}")
        tool, version, why = rest[0], rest[1], " ".join(rest[2:])
        if words[0] == "ceiling":
            ceilings[tool] = (version, why)
        else:
            needs.append(Need((guard[1], guard[2]) if guard else None, tool, version, why))
    return Table(ceilings, tuple(needs))


def refusal(r_version: str, root: dict[str, str], root_name: str, table: Table) -> str | None:
    """Why this R cannot be built in ``root`` (its tools' versions), or None."""
    for need in table.needs:
        if not need.applies(r_version):
            continue
        ceiling = table.ceilings.get(need.tool)
        if ceiling is not None and version_key(need.version) > version_key(ceiling[0]):
            return (
                f"R {r_version} needs {need.tool} >= {need.version} ({need.why}), newer than "
                f"Lambda's OS allows ({need.tool} {ceiling[0]}: {ceiling[1]}); a layer built "
                "with it would not load on Lambda"
            )
        have = root.get(need.tool)
        if have is not None and version_key(have) < version_key(need.version):
            return (
                f"R {r_version} needs {need.tool} >= {need.version} ({need.why}); the build "
                f"root ({root_name}) has {need.tool} {have}"
            )
    return None


def refusals(
    r_versions: tuple[str, ...], root: dict[str, str], root_name: str, table: Table | None = None
) -> dict[str, str]:
    """The versions of ``r_versions`` that cannot be built, each with its reason."""
    table = table or read_table()
    found = {v: refusal(v, root, root_name, table) for v in r_versions}
    return {v: why for v, why in found.items() if why is not None}
