"""`rlayer shell [BUILD_ID] [-- COMMAND ...]`: a shell inside a local build's root.

With a build id: the build root that build ran in (Debian 11, its extra system packages),
its /opt (its R and the packages it installed) and its work directory bound where they
were, its environment set, so ``R CMD INSTALL`` or ``ldd`` can be rerun by hand. Without
one: the default build root with the newest cached runtime layer of ``--r-version`` at
/opt, in a scratch directory removed afterwards.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from chalicelib.errors import NotFoundError, RequestInvalidError
from chalicelib.settings import get_settings
from rlayer.builders import buildroot
from rlayer.builders.local import LocalBuildBackend
from rlayer.builders.runner import Plan
from rlayer.builders.sources import cache_dir, default_data_dir, local_sources
from rlayer.client import options

SHELL = "/bin/bash"


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "shell",
        help="a shell in a local build's root, with its /opt and work directory",
        description=(
            "Open a shell (or run COMMAND) inside the build root a local build ran in, with "
            "that build's /opt and work directory bound as they were. Without BUILD_ID: a "
            "fresh root with a cached runtime layer of --r-version at /opt."
        ),
    )
    parser.add_argument("build_id", nargs="?", metavar="BUILD_ID")
    parser.add_argument("--r-version", metavar="X.Y.Z", help="without BUILD_ID: which R")
    parser.add_argument(
        "--work-root", type=Path, metavar="DIR", help="where the build's directory is"
    )
    parser.add_argument("command", nargs=argparse.REMAINDER, metavar="-- COMMAND")
    parser.set_defaults(func=run)


@options.reports_errors
def run(args: argparse.Namespace) -> int:
    command = [c for c in args.command if c != "--"]
    if args.r_version and args.build_id:
        # argparse hands the first word after "--" to the optional BUILD_ID; with
        # --r-version there is no build, so it is the command's.
        command.insert(0, args.build_id)
        args.build_id = None
    command = command or [SHELL]
    if args.build_id:
        return _in_build(args.build_id, args.work_root, command)
    return _fresh(args.r_version, command)


def _work_roots(explicit: Path | None) -> list[Path]:
    if explicit is not None:
        return [explicit]
    roots = []
    if get_settings().local_work_dir:
        roots.append(Path(get_settings().local_work_dir))
    # `rlayer build-layer`'s and `rlayer serve`'s.
    return [*roots, cache_dir() / "work", default_data_dir() / "builds"]


def _in_build(build_id: str, work_root: Path | None, command: list[str]) -> int:
    for candidate in _work_roots(work_root):
        backend = LocalBuildBackend(get_settings(), work_root=candidate)
        try:
            build_dir = backend.build_dir(build_id)
        except NotFoundError as exc:
            raise RequestInvalidError(f"build_id: {exc.message}", field="build_id") from exc
        if (build_dir / "plan.json").is_file():
            break
    else:
        raise NotFoundError(
            f"no local build {build_id} (looked in {', '.join(map(str, _work_roots(work_root)))})"
        )
    plan = Plan.model_validate_json((build_dir / "plan.json").read_text())
    work = Path(plan.env["RLAYER_WORK_DIR"])
    opt = work / "root" / "opt"
    if not opt.is_dir():
        raise NotFoundError(
            f"build {build_id} kept no /opt (its work directory was cleaned up after it ended)"
        )
    root = buildroot.ensure(plan.root_extra)
    prefix = buildroot.bwrap_prefix(
        root.path,
        writable=[build_dir, *(Path(p) for p in plan.writable if Path(p).exists())],
        readable=[Path(p) for p in plan.readable],
        opt=opt,
    )
    print(f"rlayer shell: build {build_id} in {root.identity}; /opt is its /opt, cwd {work}")
    return _run(prefix, {**plan.env, "RLAYER_SHELL": build_id}, work, command)


def _fresh(r_version: str | None, command: list[str]) -> int:
    if r_version is None:
        prepared = local_sources()
        if prepared is None:
            raise RequestInvalidError("r_version: give --r-version", field="r_version")
        r_version = prepared.r_version
    arch = "arm64" if os.uname().machine in ("aarch64", "arm64") else "x86_64"
    cached = sorted(
        (cache_dir() / "build" / "runtime").glob(f"{r_version}-{arch}-*/runtime.zip"),
        key=lambda p: p.stat().st_mtime,
    )
    if not cached:
        raise NotFoundError(
            f"no runtime layer of R {r_version} is cached: build one first with "
            f"`rlayer build-layer {r_version} --out DIR`"
        )
    root = buildroot.ensure()
    with tempfile.TemporaryDirectory(prefix="rlayer-shell-") as scratch:
        opt = Path(scratch) / "opt"
        opt.mkdir()
        # unzip keeps the zip's modes (R's executables); Python's zipfile would drop them.
        subprocess.run(["unzip", "-q", str(cached[-1]), "-d", str(opt)], check=True)
        prefix = buildroot.bwrap_prefix(root.path, writable=[Path(scratch)], readable=[], opt=opt)
        print(f"rlayer shell: R {r_version} ({cached[-1].parent.name}) in {root.identity}")
        # As the layer's bootstrap sets them: R_HOME, and the layer's libraries first.
        env = {
            "RLAYER_SHELL": r_version,
            "R_HOME": "/opt/R/lib/R",
            "LD_LIBRARY_PATH": "/opt/lib:/opt/R/lib/R/lib",
        }
        return _run(prefix, env, Path(scratch), command)


def _run(prefix: list[str], env: dict[str, str], cwd: Path, command: list[str]) -> int:
    path = "/opt/R/bin:" + buildroot.ROOT_PATH
    argv = [*prefix, "--setenv", "PATH", path, "--chdir", str(cwd)]
    for key, value in env.items():
        argv += ["--setenv", key, value]
    return subprocess.run([*argv, "--", *command], check=False).returncode
