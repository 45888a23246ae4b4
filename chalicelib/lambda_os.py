"""The Lambda operating systems a layer may target, read from ``lambda_os.json``.

One row per OS: the glibc, libstdc++ (GLIBCXX, CXXABI) and GCC it has, and the shared
libraries its image carries with the version nodes each defines. The ABI gate
(``chalicelib.pipeline.abi``), the build scripts (``buildspec/closure.sh`` through
``layerzip.py os-libs``) and the README's target table (``python -m chalicelib.lambda_os``)
all read this one file.
"""

from __future__ import annotations

import json
import re
import sys
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from chalicelib.errors import ConfigurationError

TABLE = Path(__file__).with_name("lambda_os.json")
DEFAULT_TARGET = "provided.al2023"
# "GLIBC_2.2.5" -> ("GLIBC_", (2, 2, 5)); "CXXABI_TM_1" -> ("CXXABI_TM_", (1,)). A node
# without a trailing dotted number (GLIBC_PRIVATE, CXXABI_FLOAT128) only equals itself.
_NODE_RE = re.compile(r"^(.*?_)(\d+(?:\.\d+)*)$")


def parse_node(node: str) -> tuple[str, tuple[int, ...]] | None:
    match = _NODE_RE.match(node)
    if match is None:
        return None
    return match.group(1), tuple(int(part) for part in match.group(2).split("."))


def newest(nodes: list[str], prefix: str) -> str | None:
    """The newest ``prefix`` version among ``nodes`` ("2.29" of GLIBC_2.2.5 .. GLIBC_2.29)."""
    best: tuple[int, ...] | None = None
    for node in nodes:
        parsed = parse_node(node)
        if parsed and parsed[0] == prefix and (best is None or parsed[1] > best):
            best = parsed[1]
    return ".".join(map(str, best)) if best is not None else None


class LambdaOS(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    os: str
    glibc: str
    glibcxx: str
    cxxabi: str
    gcc: str
    tools: list[str]
    libraries: dict[str, list[str]]
    notes: dict[str, str] = Field(default_factory=dict)

    def provides(self, soname: str) -> bool:
        return soname in self.libraries

    def defines_no_versions(self, soname: str) -> bool:
        return self.provides(soname) and not self.libraries[soname]

    def defines(self, soname: str, node: str) -> bool:
        """Whether this OS's copy of ``soname`` defines version ``node`` (ceilings: see
        lambda_os.json)."""
        wanted = parse_node(node)
        for ceiling in self.libraries.get(soname, []):
            if ceiling == node:
                return True
            limit = parse_node(ceiling)
            if wanted and limit and wanted[0] == limit[0] and wanted[1] <= limit[1]:
                return True
        return False

    def describe(self, node: str) -> str:
        """What this OS has of a version node's family, for an error message."""
        parsed = parse_node(node)
        families = {"GLIBC_": "glibc", "GLIBCXX_": "GLIBCXX", "CXXABI_": "CXXABI"}
        if parsed and parsed[0] in families:
            field = families[parsed[0]]
            have = getattr(self, field.lower())
            return f"{self.name} ({self.os}) has {field} {have}"
        return f"{self.name} ({self.os}) does not define it"


@lru_cache(maxsize=1)
def targets() -> dict[str, LambdaOS]:
    try:
        data = json.loads(TABLE.read_text())
        return {name: LambdaOS(name=name, **row) for name, row in dict(data["targets"]).items()}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigurationError(f"cannot read the Lambda OS table {TABLE.name}: {exc}") from exc


def target(name: str = DEFAULT_TARGET) -> LambdaOS:
    try:
        return targets()[name]
    except KeyError as exc:
        raise ConfigurationError(f"no Lambda OS {name!r} in {TABLE.name}") from exc


def compatible_runtimes() -> tuple[str, ...]:
    return tuple(targets())


def render_markdown() -> str:
    """The README's target table."""
    lines = [
        "| Runtime | OS | glibc | GLIBCXX | CXXABI | GCC | Libraries the image provides |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in targets().values():
        libs = ", ".join(
            f"`{lib}`" for lib in row.libraries if not lib.startswith(("ld-", "linux-vdso"))
        )
        lines.append(
            f"| {row.name} | {row.os} | {row.glibc} | {row.glibcxx} | {row.cxxabi} "
            f"| {row.gcc} | {libs} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render_markdown())
