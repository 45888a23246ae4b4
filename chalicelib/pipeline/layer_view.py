"""What the checks of one layer read: its zip's entries, its manifest, R's DESCRIPTIONs.

The validator's opened layers satisfy :class:`LayerView`; the ELF gate and the package
checks read layers through it only.
"""

from __future__ import annotations

import zipfile
import zlib
from typing import Literal, Protocol

from chalicelib.models import LayerManifest
from chalicelib.packages.dcf import parse_dcf

Kind = Literal["runtime", "packages"]
R_LIBRARY = "R/lib/R/library/"
SITE_LIBRARY = "packages/library/"


class LayerView(Protocol):
    @property
    def kind(self) -> Kind: ...

    @property
    def zip_name(self) -> str: ...

    zf: zipfile.ZipFile | None
    infos: dict[str, zipfile.ZipInfo]
    manifest: LayerManifest | None


def entry_mode(info: zipfile.ZipInfo) -> int:
    return info.external_attr >> 16


def read_description(layer: LayerView, path: str) -> dict[str, str] | None:
    """An R DESCRIPTION file of the layer, parsed; None when absent or unreadable."""
    if layer.zf is None or path not in layer.infos:
        return None
    try:
        raw = layer.zf.read(layer.infos[path])
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError):
        return None  # reported by the integrity check
    return parse_dcf(raw.decode("utf-8", "replace"))
