"""``make package``: the complete CloudFormation template and its artifacts, offline.

    python -m deploy.package --stage dev [--out out/dev]

writes, without touching AWS (no credentials needed):

    out/<stage>/merge-template.json   deploy/resources.yml completed (deploy/template.py)
    out/<stage>/sam.json              Chalice's SAM template with the merge applied
    out/<stage>/deployment.zip        the Lambda code (app.py, chalicelib/, dependencies,
                                      and runtime/canary/ for the RunCanary function)
    out/<stage>/build-source.zip      buildspec/ and runtime/: the CodeBuild projects' source

and refuses to finish if the packaged template fails :func:`deploy.checks.verify`.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import stat
import subprocess
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path

# What the build scripts need at build time (buildspec/common.sh reads runtime/bootstrap/).
from chalicelib.builders.base import BUILD_SOURCE_DIRS, BUILD_SOURCE_FILES
from chalicelib.errors import ConfigurationError
from deploy import checks, template

# Read by the RunCanary function at run time (chalicelib/pipeline/canary.py).
CANARY_DIR = "runtime/canary"
# Fixed timestamp: the same sources give the same zip, hence the same S3 key on deploy.
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
# `chalice package` only needs a region to name things; no call reaches AWS.
DEFAULT_REGION = "us-east-1"


def build_source_zip(dest: Path, root: Path = template.REPO) -> Path:
    """Zip BUILD_SOURCE_DIRS deterministically (sorted, fixed times, explicit modes)."""
    files = sorted(
        p
        for d in BUILD_SOURCE_DIRS
        for p in (root / d).rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    ) + [root / f for f in BUILD_SOURCE_FILES]
    files.sort()
    if not any(p.relative_to(root).parts[0] == "buildspec" for p in files):
        raise ConfigurationError("buildspec/ is empty: nothing for CodeBuild to run")
    dest.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in files:
            info = zipfile.ZipInfo(path.relative_to(root).as_posix(), _ZIP_EPOCH)
            executable = path.stat().st_mode & stat.S_IXUSR
            info.external_attr = (stat.S_IFREG | (0o755 if executable else 0o644)) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, path.read_bytes())
    return dest


def add_canary_code(deployment: Path, root: Path = template.REPO) -> list[str]:
    """Put runtime/canary/ into the Lambda package, where RunCanary looks for it.

    Chalice packages app.py and chalicelib/ only; the canary's R handler lives in
    runtime/canary/ and chalicelib.pipeline.canary reads it relative to the package root.
    """
    files = sorted(p for p in (root / CANARY_DIR).rglob("*") if p.is_file())
    if not files:
        raise ConfigurationError(f"{CANARY_DIR}/ is empty: the canary has no handler")
    names = []
    with zipfile.ZipFile(deployment, "a", zipfile.ZIP_DEFLATED) as zf:
        present = set(zf.namelist())
        for path in files:
            name = path.relative_to(root).as_posix()
            if name in present:
                continue
            info = zipfile.ZipInfo(name, _ZIP_EPOCH)
            info.external_attr = (stat.S_IFREG | 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, path.read_bytes())
            names.append(name)
    return names


# Lambda's Python runtime has boto3 and botocore; aws-lambda-powertools[tracer] pulls a second
# botocore in through aws-xray-sdk, and `chalice package` has no way to leave a dependency
# out, so the copy is removed from the zip afterwards (2,000 files, most of the package).
RUNTIME_PROVIDED = ("botocore/", "boto3/", "s3transfer/")


def drop_runtime_provided(deployment: Path) -> list[str]:
    """Rewrite ``deployment`` without the packages Lambda's runtime provides; return the
    top-level names removed."""
    tmp = deployment.with_name(deployment.name + ".part")
    dropped: set[str] = set()
    with (
        zipfile.ZipFile(deployment) as zin,
        zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zout,
    ):
        for info in zin.infolist():
            top = info.filename.split("/", 1)[0] + "/"
            dist = top.split("-", 1)[0] + "/" if top.endswith(".dist-info/") else None
            if top in RUNTIME_PROVIDED or dist in RUNTIME_PROVIDED:
                dropped.add(top)
                continue
            zout.writestr(info, zin.read(info))
    tmp.replace(deployment)
    return sorted(dropped)


def _chalice() -> str:
    # The chalice of this interpreter's environment, not whatever is first on PATH.
    beside = Path(sys.executable).with_name("chalice")
    found = str(beside) if beside.exists() else shutil.which("chalice")
    if not found:
        raise ConfigurationError("chalice is not installed (make venv)")
    return found


def package(stage: str, out: Path) -> Path:
    """Write the template and artifacts of ``stage`` to ``out``; return sam.json's path."""
    definition = template.load_definition()
    # The Chalice app is app.py at the repository's root, as `chalice package` loads it.
    if str(template.REPO) not in sys.path:
        sys.path.insert(0, str(template.REPO))
    app = importlib.import_module("app").app
    functions, traced = template.chalice_functions(app)
    merge = template.merge_template(stage, definition, functions, traced)

    out.mkdir(parents=True, exist_ok=True)
    for stale in ("sam.json", "deployment.zip", "build-source.zip"):
        (out / stale).unlink(missing_ok=True)
    merge_file = out / "merge-template.json"
    merge_file.write_text(json.dumps(merge, indent=2) + "\n")

    env = dict(os.environ)
    env.setdefault("AWS_DEFAULT_REGION", DEFAULT_REGION)
    subprocess.run(
        [
            _chalice(),
            "--project-dir",
            str(template.REPO),
            "package",
            "--stage",
            stage,
            "--merge-template",
            str(merge_file.resolve()),
            str(out.resolve()),
        ],
        check=True,
        env=env,
        cwd=template.REPO,
    )
    drop_runtime_provided(out / "deployment.zip")
    add_canary_code(out / "deployment.zip")
    build_source_zip(out / "build-source.zip")

    sam = out / "sam.json"
    problems = checks.verify(json.loads(sam.read_text()), definition)
    if problems:
        raise ConfigurationError(f"{sam}: " + "; ".join(problems))
    return sam


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.package", description=__doc__)
    parser.add_argument("--stage", default="dev", help="Chalice stage (.chalice/config.json)")
    parser.add_argument("--out", type=Path, help="output directory (default out/<stage>)")
    args = parser.parse_args(argv)
    out = args.out or template.REPO / "out" / args.stage
    try:
        sam = package(args.stage, out)
    except (ConfigurationError, subprocess.CalledProcessError) as exc:
        print(f"package: {exc}", file=sys.stderr)
        return 1
    print(f"packaged stage {args.stage}: {sam} ({out / 'deployment.zip'}, build-source.zip)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
