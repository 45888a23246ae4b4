"""Layers as Lambda lays them at /opt: zips unzipped in order, later ones overwriting."""

from __future__ import annotations

import os
import shutil
import stat
import zipfile
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from chalicelib.errors import RequestInvalidError


def _safe_member(name: str) -> PurePosixPath:
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts:
        raise RequestInvalidError(f"layer zip member {name!r} escapes the layer directory")
    return path


def _clear(target: Path) -> None:
    """Make room for a later layer's entry (a file may replace a symlink and so on)."""
    if target.is_symlink() or target.is_file():
        target.unlink()
    elif target.is_dir():
        shutil.rmtree(target)


def extract_layer_zip(zip_path: Path, dest: Path) -> None:
    """Unzip keeping what zipfile drops: permission bits (bootstrap and R's executables
    need their exec bit) and symlinks (stored by `zip -y` as a link whose data is the
    target)."""
    with zipfile.ZipFile(zip_path) as archive:
        for info in archive.infolist():
            rel = _safe_member(info.filename)
            target = dest.joinpath(*rel.parts)
            mode = info.external_attr >> 16
            if info.is_dir():
                if target.exists() and not target.is_dir():
                    _clear(target)
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.exists() or target.is_symlink():
                _clear(target)
            if stat.S_ISLNK(mode):
                os.symlink(archive.read(info).decode(), target)
                continue
            with archive.open(info) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
            os.chmod(target, (mode & 0o7777) or 0o644)


def merge_layers(layers: Sequence[Path], dest: Path) -> None:
    """Lay the layers over each other in ``dest``, in order, like Lambda's /opt."""
    for layer in layers:
        if layer.is_dir():
            shutil.copytree(layer, dest, symlinks=True, dirs_exist_ok=True)
        elif zipfile.is_zipfile(layer):
            extract_layer_zip(layer, dest)
        else:
            raise RequestInvalidError(f"layer {layer} is neither a directory nor a zip file")
