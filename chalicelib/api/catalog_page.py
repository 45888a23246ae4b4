"""The catalog web page: one static file (HTML, CSS and a little JavaScript, no build step)
that reads ``GET /layers`` beside it, or carries the catalog itself when written to a file
(``rlayer catalog --html``)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

PAGE = Path(__file__).resolve().parents[1] / "static" / "catalog.html"
_SLOT = '<script id="catalog-data" type="application/json">null</script>'


@cache
def _template() -> str:
    text = PAGE.read_text(encoding="utf-8")
    if text.count(_SLOT) != 1:
        raise RuntimeError(f"{PAGE} lost its catalog-data slot")
    return text


def page(catalog: dict[str, Any] | None = None) -> str:
    """The page; with ``catalog`` (the JSON of GET /layers) it needs no API."""
    if catalog is None:
        return _template()
    # "</" would end the script element early; JSON allows "<\/" for it.
    data = json.dumps(catalog, separators=(",", ":")).replace("</", "<\\/")
    return _template().replace(_SLOT, _SLOT.replace(">null<", f">{data}<"))
