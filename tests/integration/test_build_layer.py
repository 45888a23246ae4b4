"""The real build: R 4.2.2 compiled from source by buildspec/, through LocalBuildBackend.

The first run on a machine compiles R (about 6 minutes on 2 cores); the compiled R is cached
under ${RLAYER_CACHE_DIR:-~/.cache/rlayer} by (R version, architecture, recipe), so later
runs reuse it and take about a minute. R's source and a file:// CRAN-like repository come
from Debian's source archive (scripts/local-sources.sh), as CRAN may be unreachable.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import stat
import subprocess
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from chalicelib.builders.base import BuildProgress, BuildState
from chalicelib.errors import BuildStartError
from chalicelib.models import Architecture, BuildSpec, LayerManifest
from chalicelib.packages.dcf import parse_dcf
from chalicelib.settings import get_settings
from rlayer.builders.buildspec import BUILDSPEC
from rlayer.builders.local import LocalBuildBackend
from rlayer.builders.sources import LocalSources, ensure_local_sources
from rlayer.local import lambda_root

pytestmark = pytest.mark.integration

R_VERSION = "4.2.2"
ARCH = Architecture.ARM64 if platform.machine() in ("aarch64", "arm64") else Architecture.X86_64
FIRST = BuildSpec(r_version=R_VERSION, architecture=ARCH, packages=["digest", "R6"])
SECOND = BuildSpec(r_version=R_VERSION, architecture=ARCH, packages=["base64enc"])
# A first build may compile R: generous, but bounded.
BUILD_TIMEOUT_S = 45 * 60
REPO_ROOT = BUILDSPEC.parents[1]


@dataclass
class Built:
    progress: BuildProgress
    seconds: float
    dir: Path
    log: str

    def manifest(self, kind: str) -> LayerManifest:
        return LayerManifest.model_validate_json((self.dir / f"{kind}.manifest.json").read_text())

    def zip(self, kind: str) -> Path:
        return self.dir / f"{kind}.zip"


def _build(backend: LocalBuildBackend, build_id: str, spec: BuildSpec) -> Built:
    started = time.monotonic()
    ref = backend.start_build(build_id, spec)
    while (progress := backend.check_build(ref)).state is BuildState.IN_PROGRESS:
        assert time.monotonic() - started < BUILD_TIMEOUT_S, "build took too long"
        time.sleep(1)
    log = backend.log_path(ref).read_text(errors="replace")
    backend.cleanup(ref)
    return Built(progress, time.monotonic() - started, Path(progress.artifact_location or "."), log)


@pytest.fixture(scope="module")
def sources() -> LocalSources:
    return ensure_local_sources()


@pytest.fixture(scope="module")
def backend(sources: LocalSources, tmp_path_factory: pytest.TempPathFactory) -> LocalBuildBackend:
    settings = get_settings().model_copy(
        update={"r_source": sources.r_source, "cran_repo": sources.cran_repo}
    )
    return LocalBuildBackend(settings, work_root=tmp_path_factory.mktemp("builds"))


@pytest.fixture(scope="module")
def first(backend: LocalBuildBackend) -> Built:
    built = _build(backend, "it-first", FIRST)
    assert built.progress.state is BuildState.SUCCEEDED, built.progress.reason
    return built


@pytest.fixture(scope="module")
def second(backend: LocalBuildBackend, first: Built) -> Built:
    built = _build(backend, "it-second", SECOND)
    assert built.progress.state is BuildState.SUCCEEDED, built.progress.reason
    return built


@pytest.fixture(scope="module")
def opt(first: Built, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Both layers unzipped into one directory, as Lambda merges them into /opt."""
    root = tmp_path_factory.mktemp("opt")
    for kind in ("runtime", "packages"):
        subprocess.run(["unzip", "-q", str(first.zip(kind)), "-d", str(root)], check=True)
    return root


# -- what the build wrote --------------------------------------------------------------------
def _repo_versions(sources: LocalSources) -> dict[str, str]:
    """Package -> version as the CRAN-like repository the builds use lists them."""
    index = Path(sources.cran_repo.removeprefix("file://")) / "src/contrib/PACKAGES"
    versions: dict[str, str] = {}
    for stanza in index.read_text().split("\n\n"):
        fields = parse_dcf(stanza)
        if "Package" in fields:
            versions[fields["Package"]] = fields["Version"]
    return versions


def test_the_build_leaves_both_layers_and_manifests(first: Built, sources: LocalSources) -> None:
    assert sorted(p.name for p in first.dir.iterdir()) == [
        "packages.manifest.json",
        "packages.zip",
        "runtime.manifest.json",
        "runtime.zip",
    ]
    runtime, packages = first.manifest("runtime"), first.manifest("packages")
    assert runtime.kind == "runtime" and runtime.layer_name == FIRST.runtime_layer_name
    assert packages.kind == "packages" and packages.layer_name == FIRST.packages_layer_name
    assert runtime.r_version == packages.r_version == R_VERSION
    assert runtime.architecture is packages.architecture is ARCH
    repo = _repo_versions(sources)
    assert runtime.packages == {"jsonlite": repo["jsonlite"]}
    assert packages.packages == {"R6": repo["R6"], "digest": repo["digest"]}
    assert runtime.recipe_hash == packages.recipe_hash
    assert "--enable-R-shlib" in runtime.configure_flags
    assert "--without-recommended-packages" in runtime.configure_flags


def test_the_runtime_zip_has_the_opt_layout(first: Built) -> None:
    with zipfile.ZipFile(first.zip("runtime")) as zf:
        modes = {i.filename: i.external_attr >> 16 for i in zf.infolist()}
    assert {n.split("/")[0] for n in modes} == {"bootstrap", "runtime", "R", "lib"}
    for executable in ("bootstrap", "R/bin/Rscript", "R/lib/R/bin/exec/R"):
        assert modes[executable] & 0o111, executable
    assert modes["runtime/runtime.R"] == stat.S_IFREG | 0o644
    assert "R/lib/R/library/jsonlite/DESCRIPTION" in modes
    assert "R/lib/R/lib/libR.so" in modes
    # Pruned: no docs, help, html, tests, translations, man pages; no tcltk without Tcl.
    for name in modes:
        parts = name.split("/")
        assert not {"help", "html", "doc", "tests", "translations", "man"} & set(parts), name
        assert "tcltk" not in parts, name
    # glibc and the loader come from the Lambda OS; what R links beyond them is bundled.
    bundled = {n.removeprefix("lib/") for n in modes if n.startswith("lib/") and n != "lib/"}
    assert bundled == set(first.manifest("runtime").shared_libraries)
    assert {"libc.so.6", "libm.so.6"}.isdisjoint(bundled)
    assert not any(n.startswith("ld-linux") for n in bundled)
    assert "libgfortran.so.5" in bundled  # R's LAPACK needs it; the OS does not promise it


def test_elf_files_are_stripped(opt: Path) -> None:
    for path in (opt / "R/lib/R/lib/libR.so", opt / "packages/library/digest/libs/digest.so"):
        described = subprocess.run(
            ["file", "-b", str(path)], capture_output=True, text=True, check=True
        ).stdout
        assert ", stripped" in described, described


def test_the_packages_zip_holds_only_the_site_library_and_new_libs(first: Built) -> None:
    with zipfile.ZipFile(first.zip("packages")) as zf:
        names = zf.namelist()
    assert {n.split("/")[0] for n in names} <= {"packages", "lib"}
    assert "packages/library/digest/DESCRIPTION" in names
    assert "packages/library/R6/DESCRIPTION" in names
    assert any(n.startswith("packages/library/digest/libs/digest.so") for n in names)
    # digest needs nothing the runtime layer does not bundle already.
    assert [n for n in names if n.startswith("lib/") and n != "lib/"] == []


def test_the_pipeline_validator_accepts_the_layers(first: Built) -> None:
    from chalicelib.pipeline.artifacts import LayerArtifact, validate_artifacts

    with first.zip("runtime").open("rb") as rt, first.zip("packages").open("rb") as pk:
        layers = validate_artifacts(
            FIRST,
            [
                LayerArtifact(
                    kind="runtime",
                    manifest=(first.dir / "runtime.manifest.json").read_bytes(),
                    zip_file=rt,
                    expected_layer_name=FIRST.runtime_layer_name,
                ),
                LayerArtifact(
                    kind="packages",
                    manifest=(first.dir / "packages.manifest.json").read_bytes(),
                    zip_file=pk,
                    expected_layer_name=FIRST.packages_layer_name,
                ),
            ],
        )
    assert {layer.kind: layer.sha256 for layer in layers} == {
        "runtime": first.manifest("runtime").sha256,
        "packages": first.manifest("packages").sha256,
    }


# -- the layers run -------------------------------------------------------------------------
def _lambda_sandbox(opt: Path) -> list[str]:
    """bwrap argv: the Lambda-shaped root (what provided.al2023 has, from the build root)
    with the layers at /opt, and nothing of this machine's /usr, /lib or /etc."""
    root = lambda_root.ensure()
    argv = ["bwrap", "--ro-bind", str(root), "/", "--proc", "/proc", "--dev", "/dev"]
    argv += ["--tmpfs", "/tmp", "--ro-bind", str(opt), "/opt", "--clearenv"]
    argv += ["--setenv", "PATH", "/usr/bin:/bin", "--setenv", "R_HOME", "/opt/R/lib/R"]
    argv += ["--setenv", "LD_LIBRARY_PATH", "/lib64:/usr/lib64:/opt/R/lib/R/lib:/opt/lib"]
    return argv


def test_r_and_the_packages_run_with_nothing_but_the_lambda_os_libraries(opt: Path) -> None:
    code = (
        "cat(R.version$major, R.version$minor, '\\n');"
        "for (p in c('jsonlite', 'digest', 'R6')) library(p, character.only = TRUE);"
        "cat(digest::digest('rlayer', algo = 'sha256', serialize = FALSE), '\\n');"
        "cat(jsonlite::toJSON(list(lib = .libPaths()), auto_unbox = TRUE), '\\n');"
        "cat(format(solve(matrix(c(2, 1, 1, 3), 2))[1, 1]), '\\n');"
        "cat(capabilities('libcurl'), '\\n');"
        # pdf() is the one graphics device a layer has; its default fonts were kept.
        "f <- tempfile(fileext = '.pdf'); pdf(f); plot(1:3, main = 'rlayer');"
        "invisible(dev.off()); cat(file.size(f) > 1000, '\\n')"
    )
    # R's binary directly: no bash needed, so the sandbox holds only what Lambda promises.
    done = subprocess.run(
        [
            *_lambda_sandbox(opt),
            "/opt/R/lib/R/bin/exec/R",
            "--no-echo",
            "--vanilla",
            "-e",
            code,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["4", "2.2"]
    assert lines[1].strip() == hashlib.sha256(b"rlayer").hexdigest()
    assert json.loads(lines[2])["lib"] == ["/opt/packages/library", "/opt/R/lib/R/library"]
    assert lines[3].strip() == "0.6"
    assert lines[4].strip() == "TRUE"
    assert lines[5].strip() == "TRUE"


BYTE_CODE_R = """
compiled <- function(p) {
  ns <- if (p == "base") baseenv() else asNamespace(p)
  sum(vapply(ls(ns, all.names = TRUE), function(n) {
    f <- get(n, envir = ns)
    typeof(f) == "closure" && typeof(.Internal(bodyCode(f))) == "bytecode"
  }, NA))
}
for (p in commandArgs(TRUE)) cat(p, compiled(p), "\\n")
cat(tools::file_ext("a/b.csv"), nrow(utils::head(utils::read.csv(text = "x\\n1\\n2\\n3"), 2)),
    stats::quantile(1:5)[["50%"]], stats::coef(stats::lm(y ~ x, data.frame(x = 1:3, y = 2:4)))[[2]],
    "\\n")
"""
UNCOMPILED = ["tools", "utils", "stats", "graphics", "grDevices", "grid", "splines", "stats4"]
COMPILED = ["base", "methods", "compiler", "parallel", "jsonlite"]


def test_rarely_run_packages_are_stored_without_byte_code_and_still_run(
    first: Built, opt: Path
) -> None:
    """prune.sh keeps the runtime layer within 10 MB zipped by storing tools, utils, stats and
    the graphics packages without byte code; base, methods, the compiler, parallel (the
    loop's workers) and jsonlite keep theirs. The plain ones still answer."""
    assert first.manifest("runtime").zipped_bytes <= 10_000_000
    done = subprocess.run(
        [
            *_lambda_sandbox(opt),
            *("/opt/R/lib/R/bin/exec/R", "--no-echo", "--vanilla", "-e", BYTE_CODE_R),
            *("--args", *UNCOMPILED, *COMPILED),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    *counts, answers = done.stdout.splitlines()
    closures = {p: int(n) for p, n in (line.split() for line in counts)}
    assert {p: closures[p] for p in UNCOMPILED} == dict.fromkeys(UNCOMPILED, 0)
    assert all(closures[p] > 20 for p in COMPILED), closures
    assert answers.split() == ["csv", "2", "3", "1"]


def test_rscript_reports_the_version_under_bwrap_at_opt(opt: Path) -> None:
    done = subprocess.run(
        [
            *("bwrap", "--dev-bind", "/", "/", "--ro-bind", str(opt), "/opt"),
            *("/opt/R/bin/Rscript", "-e", "cat(as.character(getRversion()), R.home())"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp")},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [R_VERSION, "/opt/R/lib/R"]


# -- reuse ----------------------------------------------------------------------------------
def test_a_second_build_reuses_the_compiled_runtime(first: Built, second: Built) -> None:
    runtime1, runtime2 = first.manifest("runtime"), second.manifest("runtime")
    assert runtime2.reused_runtime is True
    assert runtime2.sha256 == runtime1.sha256  # the very same runtime layer
    assert second.manifest("packages").reused_runtime is True
    assert second.manifest("packages").packages == {"base64enc": "0.1-3"}
    assert "reused from the cache" in second.log
    assert "./configure" not in second.log and "make -j" not in second.log
    assert "installing *source* package 'base64enc'" in second.log


def test_the_same_request_again_gives_a_byte_identical_packages_layer(
    backend: LocalBuildBackend, first: Built
) -> None:
    again = _build(backend, "it-again", FIRST)
    assert again.progress.state is BuildState.SUCCEEDED, again.progress.reason
    assert "installing *source* package 'digest'" in again.log  # installed anew, not copied
    assert again.zip("packages").read_bytes() == first.zip("packages").read_bytes()
    assert again.manifest("packages").sha256 == first.manifest("packages").sha256
    with zipfile.ZipFile(again.zip("packages")) as zf:
        description = zf.read("packages/library/digest/DESCRIPTION").decode()
    # The install time R stamps is replaced by the zips' fixed time; the rest is R's.
    built = [line for line in description.splitlines() if line.startswith("Built: ")]
    assert len(built) == 1
    assert re.fullmatch(
        rf"Built: R {R_VERSION}; [\w.]+-[\w.-]+; 1980-01-01 00:00:00 UTC; unix", built[0]
    ), built


# -- failures ------------------------------------------------------------------------------
def test_a_package_not_in_the_repository_is_refused_before_the_build_starts(
    backend: LocalBuildBackend, first: Built
) -> None:
    spec = BuildSpec(r_version=R_VERSION, architecture=ARCH, packages=["digest", "notonthisrepo"])
    with pytest.raises(BuildStartError, match="'notonthisrepo' is not in the repository"):
        backend.start_build("it-missing-pkg", spec)
    assert not backend.work_root.joinpath("it-missing-pkg").exists()


def broken_repo(sources: LocalSources, into: Path) -> str:
    """A repository of jsonlite (the runtime's) and 'broken', whose C code does not compile."""
    contrib = into / "src" / "contrib"
    contrib.mkdir(parents=True)
    source = Path(sources.cran_repo.removeprefix("file://")) / "src" / "contrib"
    for tarball in source.glob("jsonlite_*.tar.gz"):
        (contrib / tarball.name).write_bytes(tarball.read_bytes())
    pkg = into / "pkg" / "broken"
    (pkg / "src").mkdir(parents=True)
    (pkg / "DESCRIPTION").write_text(
        "Package: broken\nVersion: 1.0\nTitle: Broken\nDescription: Does not compile.\n"
        "License: MIT\nAuthor: rlayer\nMaintainer: rlayer <rlayer@example.com>\n"
    )
    (pkg / "NAMESPACE").write_text("")
    (pkg / "src" / "broken.c").write_text("this is not C;\n")
    subprocess.run(
        ["tar", "-czf", str(contrib / "broken_1.0.tar.gz"), "-C", str(pkg.parent), "broken"],
        check=True,
    )
    subprocess.run(
        [
            "Rscript",
            "--vanilla",
            "-e",
            "tools::write_PACKAGES(commandArgs(TRUE)[1], type = 'source')",
            str(contrib),
        ],
        check=True,
    )
    return into.as_uri()


def test_a_failed_build_layer_keeps_its_work_for_rlayer_shell(
    first: Built, sources: LocalSources, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    from rlayer.cli import main

    repo = broken_repo(sources, tmp_path / "repo")
    out = tmp_path / "out"
    status = main(
        [
            "build-layer",
            R_VERSION,
            "broken",
            "--arch",
            ARCH.value,
            "--repo",
            repo,
            "--out",
            str(out),
        ]
    )
    err = capfd.readouterr().err
    assert status == 1
    # R's own words from the failed compile, and the way in.
    assert "build-packages.sh" in err and "broken.c" in err
    build_id = re.search(r"debug it: rlayer shell (\S+)", err)
    assert build_id is not None, err
    # Inside: the build's /opt (its R), its work directory, the build root's tools.
    status = main(
        ["shell", build_id[1], "--", "sh", "-c", "ldd /opt/R/lib/R/lib/libR.so && pwd && ls"]
    )
    shown = capfd.readouterr().out
    assert status == 0, shown
    assert "libm.so.6" in shown and "not found" not in shown
    assert "R-" in shown or "src" in shown or "out" in shown
    # A command's failure is the shell's exit status.
    assert main(["shell", build_id[1], "--", "sh", "-c", "exit 3"]) == 3


def test_rlayer_shell_without_a_build_gives_a_fresh_root_with_a_cached_r(
    first: Built, capfd: pytest.CaptureFixture[str]
) -> None:
    from rlayer.cli import main

    status = main(["shell", "--r-version", R_VERSION, "--", "/opt/R/lib/R/bin/exec/R", "--version"])
    shown = capfd.readouterr().out
    assert status == 0, shown
    assert f"R version {R_VERSION}" in shown


def test_install_packages_fails_on_a_pin_the_repository_cannot_serve(
    sources: LocalSources, tmp_path: Path
) -> None:
    # The installer alone, with this machine's R: quick, same script the build runs.
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "RLAYER_PKG_TARGET": str(tmp_path / "lib"),
        "RLAYER_PKG_LIST": "R6==2.4.0",
        "RLAYER_CRAN_REPO": sources.cran_repo,
        "RLAYER_JOBS": "1",
    }
    done = subprocess.run(
        ["Rscript", "--vanilla", str(BUILDSPEC.parent / "install-packages.R")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert "package 'R6' version 2.4.0 is not available" in done.stderr
    assert not (tmp_path / "lib/R6").exists()


# -- the canary through the real bootstrap ---------------------------------------------------
def test_the_canary_runs_through_the_bootstrap_under_the_runtime_api_emulator(
    first: Built, sources: LocalSources
) -> None:
    from rlayer.local.runtime_api import RuntimeSession

    canary = REPO_ROOT / "runtime/canary"
    event = {"expected_r_version": R_VERSION, "packages": ["jsonlite", *FIRST.package_names()]}
    # The zips exactly as built, unzipped at /opt by the emulator's sandbox.
    with RuntimeSession(
        layers=[first.zip("runtime"), first.zip("packages")],
        task_root=canary,
        handler="canary.handler",
        timeout_s=60,
        memory_mb=1024,
    ) as session:
        result = session.invoke(json.dumps(event).encode())
        again = session.invoke(json.dumps(event).encode())  # the same warm R process
    assert result.ok, result
    body = result.json_payload()
    assert body["r_version"] == R_VERSION
    repo = _repo_versions(sources)
    assert body["packages"] == {name: repo[name] for name in ("jsonlite", "R6", "digest")}
    assert body["failed"] == {}
    assert body["result"]["sha256"] == hashlib.sha256(b"rlayer").hexdigest()
    assert body["result"]["json_roundtrip"] is True
    assert again.ok and again.json_payload()["r_version"] == R_VERSION


def _drop_from_zip(source: Path, prefix: str, dest: Path) -> Path:
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            if not info.filename.startswith(prefix):
                zout.writestr(info, zin.read(info))
    return dest


def test_a_runtime_layer_missing_libgfortran_fails_like_on_lambda_naming_it(
    first: Built, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The host has a libgfortran; the Lambda-shaped root does not, nor does Lambda."""
    from rlayer.cli import main
    from rlayer.local.runtime_api import RuntimeSession

    broken = _drop_from_zip(first.zip("runtime"), "lib/libgfortran", tmp_path / "runtime.zip")
    canary = REPO_ROOT / "runtime" / "canary"
    event = {"expected_r_version": R_VERSION, "packages": ["jsonlite"]}
    with RuntimeSession(
        layers=[broken], task_root=canary, handler="canary.handler", timeout_s=60
    ) as session:
        result = session.invoke(json.dumps(event).encode())
    # R starts (libR.so does not need libgfortran); LAPACK's module does, at solve().
    assert not result.ok
    assert result.error_type == "CanaryError", result
    assert "libgfortran.so.5: cannot open shared object file" in result.payload.decode()

    event_file = tmp_path / "event.json"
    event_file.write_text(json.dumps(event))
    argv = ["invoke", "canary.handler", "--event", str(event_file), "--task-root", str(canary)]
    status = main([*argv, "--layer", str(broken), "--timeout", "60"])
    captured = capsys.readouterr()
    assert status == 1
    assert "libgfortran.so.5" in captured.err + captured.out
    # The unmodified layer passes the same way.
    status = main([*argv, "--layer", str(first.zip("runtime")), "--timeout", "60"])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert json.loads(captured.out)["r_version"] == R_VERSION


def test_the_layers_were_built_in_the_build_root_for_lambdas_glibc(first: Built) -> None:
    for kind in ("runtime", "packages"):
        manifest = first.manifest(kind)
        assert manifest.build_root.startswith("debian-bullseye-")
    runtime = first.manifest("runtime")
    assert runtime.needs_glibc is not None
    assert tuple(map(int, runtime.needs_glibc.split("."))) <= (2, 34)
    # The gate's limits: 15 MB zipped, 45 MB unzipped for the runtime layer.
    assert runtime.zipped_bytes <= 15_000_000
    assert runtime.unzipped_bytes <= 45_000_000


# -- the command -----------------------------------------------------------------------------
def test_build_layer_writes_the_zips_and_prints_their_sizes(
    first: Built, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from rlayer.cli import main

    status = main(["build-layer", R_VERSION, "R6", "--arch", ARCH.value, "--out", str(tmp_path)])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "packages.manifest.json",
        "packages.zip",
        "runtime.manifest.json",
        "runtime.zip",
    ]
    runtime = LayerManifest.model_validate_json((tmp_path / "runtime.manifest.json").read_text())
    assert runtime.sha256 == first.manifest("runtime").sha256  # the cached runtime, reused
    assert f"{runtime.zipped_bytes / 1e6:.1f}" in captured.out
    assert "r-4_2_2-" in captured.out


def test_build_layer_refuses_a_package_the_repository_does_not_have(
    first: Built, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from rlayer.cli import main

    status = main(
        ["build-layer", R_VERSION, "nosuchpkg", "--arch", ARCH.value, "--out", str(tmp_path)]
    )
    captured = capsys.readouterr()
    assert status == 1
    assert "'nosuchpkg' is not in the repository" in captured.err
    assert list(tmp_path.iterdir()) == []
