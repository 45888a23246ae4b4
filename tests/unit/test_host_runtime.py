"""rlayer.local.host_runtime: the checkout's runtime laid out for host R."""

from __future__ import annotations

from pathlib import Path

import pytest

from chalicelib.errors import ConfigurationError
from rlayer.local import host_runtime


def _front(tmp_path: Path, body: str) -> str:
    front = tmp_path / "R"
    front.write_text("#!/bin/sh\n" + body)
    front.chmod(0o755)
    return str(front)


def test_a_failed_compile_names_native_c_and_leaves_no_layer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RLAYER_CACHE_DIR", str(tmp_path / "cache"))
    front = _front(tmp_path, 'echo "json_read.c:1: error: R.h: No such file" >&2\nexit 1\n')
    with pytest.raises(ConfigurationError, match=r"native part.*R\.h: No such file"):
        host_runtime.host_runtime_layer(front)
    assert list((tmp_path / "cache" / "host-runtime").iterdir()) == []


def test_the_layer_is_made_once_and_holds_the_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RLAYER_CACHE_DIR", str(tmp_path / "cache"))
    calls = tmp_path / "calls"
    # A stand-in compiler: writes the .so it is asked for and counts its calls.
    front = _front(tmp_path, f'echo x >> "{calls}"\n: > "$4"\n')
    layer = host_runtime.host_runtime_layer(front)
    assert host_runtime.host_runtime_layer(front) == layer
    assert calls.read_text() == "x\n"
    assert (layer / "bootstrap").stat().st_mode & 0o100
    assert {p.name for p in (layer / "runtime").iterdir()} >= {"runtime.R", "json.R", "native.so"}
    # Only what a layer holds: no C sources or objects.
    assert {p.name for p in layer.iterdir()} == {"bootstrap", "runtime"}
    assert not [p for p in (layer / "runtime").iterdir() if p.suffix in (".c", ".h", ".o")]


def test_no_r_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(host_runtime.shutil, "which", lambda _name: None)
    with pytest.raises(ConfigurationError, match="R is not installed"):
        host_runtime.host_runtime_layer()
