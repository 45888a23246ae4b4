"""Which OS packages a set of R packages builds against: the table in system_libraries.json."""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from chalicelib.packages.index import IndexEntry

TABLE = Path(__file__).resolve().parents[1] / "system_libraries.json"
PackageManager = Literal["dnf", "apt"]


class SystemLibrary(BaseModel):
    model_config = ConfigDict(frozen=True)

    library: str
    match: tuple[str, ...]
    packages: tuple[str, ...]
    dnf: str | None  # None: Amazon Linux 2023 does not have it
    apt: str

    @property
    def in_al2023(self) -> bool:
        return self.dnf is not None

    def os_package(self, manager: PackageManager) -> str | None:
        return self.dnf if manager == "dnf" else self.apt


class Table(BaseModel):
    model_config = ConfigDict(frozen=True)

    not_libraries: tuple[str, ...]
    libraries: tuple[SystemLibrary, ...]


@lru_cache(maxsize=1)
def table() -> Table:
    return Table.model_validate(json.loads(TABLE.read_text()))


def _matches(patterns: tuple[str, ...], text: str) -> bool:
    return any(re.search(p, text, re.IGNORECASE) for p in patterns)


def libraries_for(entry: IndexEntry) -> tuple[tuple[SystemLibrary, ...], bool]:
    """(the libraries this package builds against, whether its SystemRequirements text was
    recognised). Unrecognised text is for the log: the build goes on, and a library then
    missing fails the install or the ABI gate, naming it."""
    text = entry.system_requirements or ""
    found = tuple(
        lib
        for lib in table().libraries
        if entry.name in lib.packages or (text and _matches(lib.match, text))
    )
    recognised = not text or bool(found) or _matches(table().not_libraries, text)
    return found, recognised
