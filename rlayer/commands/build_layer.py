"""`rlayer build-layer R_VERSION [PACKAGE ...] --out DIR`: build the layer zips on this machine.

The same buildspec phases the pipeline runs (through the local build backend), without the
pipeline: no API, no AWS. Leaves runtime.zip, packages.zip and their manifests in DIR and
prints their sizes; on failure, exits 1 with the failing step and its log tail.
"""

from __future__ import annotations

import argparse
import contextlib
import secrets
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from rich.table import Table

from chalicelib.builders.base import BuildState
from chalicelib.errors import ArtifactInvalidError, request_invalid
from chalicelib.lambda_os import DEFAULT_TARGET
from chalicelib.models import BuildSpec, LayerManifest
from chalicelib.pipeline.artifacts import LayerArtifact, validate_artifacts
from chalicelib.settings import get_settings
from rlayer.builders.local import LocalBuildBackend
from rlayer.client import options

ARTIFACTS = ("runtime.zip", "runtime.manifest.json", "packages.zip", "packages.manifest.json")
EXIT_INTERRUPTED = 130


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "build-layer",
        help="build the layer zips on this machine (no pipeline, no AWS)",
        description=(
            "Compile R (or reuse the one compiled before with the same recipe), install the "
            "packages, and write runtime.zip / packages.zip with their manifests to --out."
        ),
    )
    options.add_spec_arguments(
        parser, arch_help="must be this machine's architecture (R is compiled natively)"
    )
    parser.add_argument(
        "--r-source",
        metavar="PATH_OR_URL",
        help=(
            "R source tarball (path, file:// or https:// URL); default: the one `make "
            "local-sources` prepared if it is R_VERSION, else CRAN's"
        ),
    )
    parser.add_argument(
        "--repo",
        metavar="URL",
        help="CRAN-like repository (https:// or file://); default: settings' (CRAN_REPO)",
    )
    parser.add_argument("--out", required=True, type=Path, metavar="DIR")
    parser.add_argument(
        "--keep-work", action="store_true", help="keep the build's /opt image and scratch files"
    )
    parser.set_defaults(func=run)


@options.reports_errors
def run(args: argparse.Namespace) -> int:
    try:
        spec = BuildSpec.model_validate(
            {"r_version": args.r_version, "architecture": args.arch, "packages": args.packages}
        )
    except ValidationError as exc:
        raise request_invalid(exc) from exc
    updates = {}
    if args.r_source:
        source = args.r_source
        if "://" not in source:
            source = str(Path(source).resolve())
        updates["r_source"] = source
    if args.repo:
        updates["cran_repo"] = args.repo
    settings = get_settings().model_copy(update=updates)
    backend = LocalBuildBackend(settings)
    out = options.console()
    err = options.error_console()

    build_id = f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{secrets.token_hex(4)}"
    started = time.monotonic()
    ref = backend.start_build(build_id, spec)
    err.print(f"build {ref}: log {backend.log_path(ref)}", markup=False)
    phase = None
    try:
        while True:
            progress = backend.check_build(ref)
            if progress.current_phase != phase:
                phase = progress.current_phase
                err.print(f"  {phase} ({time.monotonic() - started:.0f} s)", markup=False)
            if progress.state is not BuildState.IN_PROGRESS:
                break
            time.sleep(1.0)
    except KeyboardInterrupt:
        backend.stop_build(ref)
        err.print("stopped", markup=False)
        return EXIT_INTERRUPTED

    if progress.state is not BuildState.SUCCEEDED:
        # The work stays: its /opt and sources are what one debugs with.
        err.print(f"build failed: {progress.reason}", markup=False)
        err.print(f"full log: {backend.log_path(ref)}", markup=False)
        err.print(f"debug it: rlayer shell {ref}", markup=False)
        return options.EXIT_FAILED
    if not args.keep_work:
        backend.cleanup(ref)  # the log stays

    assert progress.artifact_location is not None
    source_dir = Path(progress.artifact_location)
    try:
        # The gate ValidateArtifact runs, ABI included: a layer that would not load on
        # Lambda is not handed out.
        validate_directory(spec, source_dir)
    except ArtifactInvalidError as exc:
        err.print(f"the layers would not run on {DEFAULT_TARGET}: {exc.message}", markup=False)
        err.print(f"they stay in {source_dir}", markup=False)
        return options.EXIT_FAILED
    args.out.mkdir(parents=True, exist_ok=True)
    for name in ARTIFACTS:
        (args.out / name).unlink(missing_ok=True)  # no stale layer from an earlier build
        if (source_dir / name).is_file():
            shutil.copyfile(source_dir / name, args.out / name)
    if not args.keep_work:
        shutil.rmtree(source_dir, ignore_errors=True)  # they live in --out now
    out.print(_sizes_table(args.out, time.monotonic() - started))
    return options.EXIT_OK


def validate_directory(spec: BuildSpec, directory: Path) -> None:
    """validate_artifacts over the zips and manifests a build left in ``directory``."""
    with contextlib.ExitStack() as stack:
        artifacts = [
            LayerArtifact(
                kind=kind,
                manifest=(directory / f"{kind}.manifest.json").read_bytes(),
                zip_file=stack.enter_context((directory / f"{kind}.zip").open("rb")),
                expected_layer_name=spec.runtime_layer_name
                if kind == "runtime"
                else spec.packages_layer_name,
            )
            for kind in ("runtime", "packages")
            if (directory / f"{kind}.zip").is_file()
        ]
        validate_artifacts(spec, artifacts)


def _sizes_table(out_dir: Path, seconds: float) -> Table:
    table = Table(title=f"layers in {out_dir} ({seconds:.0f} s)")
    for column in ("layer", "zip", "zipped MB", "unzipped MB", "files", "reused R", "sha256"):
        table.add_column(column, justify="right" if "MB" in column else "left")
    for kind in ("runtime", "packages"):
        path = out_dir / f"{kind}.manifest.json"
        if not path.is_file():
            continue
        m = LayerManifest.model_validate_json(path.read_text())
        table.add_row(
            m.layer_name,
            str(out_dir / m.zip_name),
            f"{m.zipped_bytes / 1e6:.1f}",
            f"{m.unzipped_bytes / 1e6:.1f}",
            str(m.file_count),
            "yes" if m.reused_runtime else "no",
            m.sha256[:12],
        )
    return table
