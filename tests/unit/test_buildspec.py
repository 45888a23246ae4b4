"""buildspec/: the phases file, the deterministic zips and the manifest contract."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import stat
import sys
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

from chalicelib.models import LayerManifest
from rlayer.builders.buildspec import BUILDSPEC, Buildspec

BUILDSPEC_DIR = BUILDSPEC.parent


def _load_layerzip() -> ModuleType:
    spec = importlib.util.spec_from_file_location("layerzip", BUILDSPEC_DIR / "layerzip.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["layerzip"] = module
    spec.loader.exec_module(module)
    return module


layerzip = _load_layerzip()


# -- buildspec.yml -------------------------------------------------------------------------
def test_phases_run_in_codebuild_order_and_call_existing_scripts() -> None:
    spec = Buildspec.load()
    phases = spec.ordered_phases()
    assert [p for p, _ in phases] == ["install", "pre_build", "build", "post_build"]
    scripts = [
        word
        for _, commands in phases
        for command in commands
        for word in command.split()
        if word.startswith("buildspec/")
    ]
    assert scripts == [
        "buildspec/install-deps.sh",
        "buildspec/prepare.sh",
        "buildspec/build-runtime.sh",
        "buildspec/build-packages.sh",
        "buildspec/upload.sh",
    ]
    for script in scripts:
        assert (BUILDSPEC_DIR.parent / script).is_file(), script


def test_failures_abort_and_upload_only_follows_success() -> None:
    spec = Buildspec.load()
    for name in ("install", "pre_build", "build"):
        assert spec.phases[name].on_failure == "ABORT"
    (upload,) = spec.phases["post_build"].commands
    # CodeBuild runs post_build after a failed build too; the guard keeps artifacts out.
    assert "CODEBUILD_BUILD_SUCCEEDING" in upload


def test_request_values_are_never_interpolated_into_commands() -> None:
    spec = Buildspec.load()
    for _, commands in spec.ordered_phases():
        for command in commands:
            assert "RLAYER_PACKAGES" not in command and "RLAYER_R_VERSION" not in command


# -- deterministic zips --------------------------------------------------------------------
def _tree(root: Path, *, order: list[str], mtime: float) -> None:
    files = {
        "bootstrap": (b"#!/bin/sh\nexec true\n", 0o700),
        "R/bin/Rscript": (b"\x7fELF fake", 0o775),
        "R/lib/R/library/base/DESCRIPTION": (b"Package: base\nVersion: 4.2.2\n", 0o600),
        "lib/libx.so.1": (b"\x7fELF lib" * 100, 0o755),
        "runtime/runtime.R": (b"# loop\n" * 50, 0o664),
    }
    for name in order:
        data, mode = files[name]
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        path.chmod(mode)
        os.utime(path, (mtime, mtime))
    (root / "R/empty").mkdir(parents=True, exist_ok=True)
    link = root / "lib/libx.so"
    link.parent.mkdir(exist_ok=True)
    if not link.is_symlink():
        link.symlink_to("libx.so.1")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_same_inputs_give_the_same_bytes(tmp_path: Path) -> None:
    names = [
        "bootstrap",
        "R/bin/Rscript",
        "R/lib/R/library/base/DESCRIPTION",
        "lib/libx.so.1",
        "runtime/runtime.R",
    ]
    a, b = tmp_path / "a", tmp_path / "b"
    _tree(a, order=names, mtime=1_600_000_000)
    # Other creation order, other timestamps, other umask-ish modes on disk.
    _tree(b, order=list(reversed(names)), mtime=1_700_000_000)
    (b / "R/bin/Rscript").chmod(0o700)
    layerzip.write_zip(a, tmp_path / "a.zip", ["bootstrap", "runtime", "R", "lib"])
    layerzip.write_zip(b, tmp_path / "b.zip", ["lib", "R", "runtime", "bootstrap"])
    assert _sha(tmp_path / "a.zip") == _sha(tmp_path / "b.zip")


def test_a_changed_file_changes_the_hash(tmp_path: Path) -> None:
    names = ["bootstrap", "R/bin/Rscript", "runtime/runtime.R"]
    _tree(tmp_path / "a", order=names, mtime=0)
    layerzip.write_zip(tmp_path / "a", tmp_path / "1.zip", ["bootstrap", "R", "runtime"])
    (tmp_path / "a/runtime/runtime.R").write_bytes(b"# changed\n")
    layerzip.write_zip(tmp_path / "a", tmp_path / "2.zip", ["bootstrap", "R", "runtime"])
    assert _sha(tmp_path / "1.zip") != _sha(tmp_path / "2.zip")


def test_entries_are_sorted_timestamped_1980_with_explicit_modes(tmp_path: Path) -> None:
    names = [
        "bootstrap",
        "R/bin/Rscript",
        "R/lib/R/library/base/DESCRIPTION",
        "lib/libx.so.1",
        "runtime/runtime.R",
    ]
    _tree(tmp_path / "t", order=names, mtime=1_650_000_000)
    out = tmp_path / "layer.zip"
    layerzip.write_zip(tmp_path / "t", out, ["runtime", "lib", "bootstrap", "R"])
    with zipfile.ZipFile(out) as zf:
        infos = zf.infolist()
        entries = [i.filename for i in infos]
        assert entries == sorted(entries)
        assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
        modes = {i.filename: i.external_attr >> 16 for i in infos}
        assert zf.read("lib/libx.so") == b"libx.so.1"
    assert modes["bootstrap"] == stat.S_IFREG | 0o755
    assert modes["R/bin/Rscript"] == stat.S_IFREG | 0o755
    assert modes["lib/libx.so.1"] == stat.S_IFREG | 0o755
    assert modes["runtime/runtime.R"] == stat.S_IFREG | 0o644
    assert modes["R/lib/R/library/base/DESCRIPTION"] == stat.S_IFREG | 0o644
    assert modes["R/empty/"] == stat.S_IFDIR | 0o755
    assert modes["lib/libx.so"] == stat.S_IFLNK | 0o777


def test_a_missing_path_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        layerzip.write_zip(tmp_path, tmp_path / "x.zip", ["bootstrap"])


# -- manifest ------------------------------------------------------------------------------
def test_manifest_is_a_layer_manifest_field_for_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RLAYER_RUNTIME_LAYER_NAME", "r-4_2_2-x86_64")
    monkeypatch.setenv("RLAYER_PACKAGES_LAYER_NAME", "r-4_2_2-x86_64-pkgs-abc")
    monkeypatch.setenv("RLAYER_R_VERSION", "4.2.2")
    monkeypatch.setenv("RLAYER_ARCH", "x86_64")
    monkeypatch.setenv("RLAYER_BUILD_OS", "debian-bullseye-test")
    lib = tmp_path / "opt/packages/library"
    for name, version, priority in (
        ("digest", "0.6.31", None),
        ("R6", "2.5.1", None),
        ("stats", "4.2.2", "base"),
    ):
        (lib / name).mkdir(parents=True)
        text = f"Package: {name}\nVersion: {version}\n"
        if priority:
            text += f"Priority: {priority}\n"
        (lib / name / "DESCRIPTION").write_text(text)
    libs = tmp_path / "libs.txt"
    libs.write_text("libz.so.1\nlibgfortran.so.5\nlibz.so.1\n")
    flags = tmp_path / "flags.txt"
    flags.write_text("# comment\n--prefix=/opt/R\n\n--enable-R-shlib\n")
    layerzip.write_zip(tmp_path / "opt", tmp_path / "packages.zip", ["packages"])

    data = layerzip.manifest(
        tmp_path / "packages.zip",
        kind="packages",
        recipe_hash="0123456789abcdef",
        package_libs=[lib],
        shared_libs_file=libs,
        flags_file=flags,
        build_seconds=12.34,
        reused_runtime=True,
    )
    manifest = LayerManifest.model_validate(data)  # extra="forbid": no unknown fields
    assert set(data) == set(LayerManifest.model_fields)
    assert manifest.layer_name == "r-4_2_2-x86_64-pkgs-abc"
    assert manifest.packages == {"R6": "2.5.1", "digest": "0.6.31"}  # base packages left out
    assert manifest.shared_libraries == ["libgfortran.so.5", "libz.so.1"]
    assert manifest.configure_flags == ["--prefix=/opt/R", "--enable-R-shlib"]
    assert manifest.file_count == 3
    assert manifest.unzipped_bytes == sum(
        (lib / n / "DESCRIPTION").stat().st_size for n in ("digest", "R6", "stats")
    )
    assert manifest.zipped_bytes == (tmp_path / "packages.zip").stat().st_size
    assert manifest.sha256 == _sha(tmp_path / "packages.zip")
    assert manifest.reused_runtime is True


def test_mark_reused_rewrites_only_that_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RLAYER_RUNTIME_LAYER_NAME", "r-4_2_2-x86_64")
    monkeypatch.setenv("RLAYER_R_VERSION", "4.2.2")
    monkeypatch.setenv("RLAYER_ARCH", "x86_64")
    monkeypatch.setenv("RLAYER_BUILD_OS", "debian-bullseye-test")
    (tmp_path / "opt/runtime").mkdir(parents=True)
    (tmp_path / "opt/runtime/runtime.R").write_text("x")
    layerzip.write_zip(tmp_path / "opt", tmp_path / "runtime.zip", ["runtime"])
    path = tmp_path / "runtime.manifest.json"
    layerzip.main(
        [
            "manifest",
            str(tmp_path / "runtime.zip"),
            "runtime",
            str(path),
            "--recipe-hash",
            "feedfacefeedface",
        ]
    )
    before = LayerManifest.model_validate_json(path.read_text())
    layerzip.main(["mark-reused", str(path)])
    after = LayerManifest.model_validate_json(path.read_text())
    assert before.reused_runtime is False and after.reused_runtime is True
    assert after.model_dump(exclude={"reused_runtime"}) == before.model_dump(
        exclude={"reused_runtime"}
    )
