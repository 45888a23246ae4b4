"""A local EC2 instance: runs an instance's user data as its machine would, on this one.

The ``ec2`` backend's instances run Amazon Linux 2023; offline, their user data runs in the
local backend's build root (Debian 11, ``rlayer.builders.buildroot``) under bubblewrap, as
root of a machine of its own:

- its disk: ``<home>/disk`` at ``/srv`` (the user data works in ``/srv/rlayer``), its /opt
  image at ``/opt``, a private ``/tmp``;
- its own PID namespace, so a power-off ends every process it started, as a real one does;
- ``poweroff`` on its PATH marks ``<home>/run/powered-off``; :meth:`InstanceRun.supervise`
  then ends the machine (the owner, ``rlayer.local.ec2_bridge``, terminates the instance);
- its console (what GetConsoleOutput returns) is the script's output, ``<home>/console.log``;
- the machine's environment: this machine's compiled-R cache (``RLAYER_CACHE_DIR``, bound at
  its own path, with the local sources in it) and the build root's identity as the build's
  OS, so an EC2 build reuses what local builds compiled.

The network is this machine's: the user data reaches the stack's S3 (moto) through the
presigned URLs it carries.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from rlayer.builders import buildroot
from rlayer.builders.runner import signal_group
from rlayer.builders.sources import cache_dir, local_sources

CONSOLE_MAX = 64 * 1024  # EC2 keeps the last 64 KB of a console
RUN_DIR = "/run/rlayer-instance"
POWEROFF = f"""#!/bin/sh
# The instance's power-off: the runner sees the mark and ends the whole machine.
: >{RUN_DIR}/powered-off
exec sleep 600
"""
PASSED_ENV = ("LANG", "RLAYER_JOBS")
_INPUT_RE = re.compile(r"^export (?:R_SOURCE|RLAYER_CRAN_REPO)=(?P<value>.*)$", re.MULTILINE)


class InstanceRun:
    """One instance's machine: start it, watch it, end it (see the module docstring)."""

    def __init__(self, instance_id: str, user_data: str, home: Path) -> None:
        self.instance_id = instance_id
        self.user_data = user_data
        self.home = home
        self.proc: subprocess.Popen[bytes] | None = None
        self.powered_off = False

    @property
    def console_path(self) -> Path:
        return self.home / "console.log"

    def console(self) -> str:
        try:
            with self.console_path.open("rb") as f:
                f.seek(max(0, self.console_path.stat().st_size - CONSOLE_MAX))
                return f.read().decode("utf-8", errors="replace")
        except OSError:
            return ""

    def argv(self) -> list[str]:
        root = buildroot.ensure(())
        cache = cache_dir()
        run = self.home / "run"
        for path in (self.home / "disk", self.home / "root" / "opt", run / "bin", cache):
            path.mkdir(parents=True, exist_ok=True)
        (run / "user-data").write_text(self.user_data)
        (run / "bin" / "poweroff").write_text(POWEROFF)
        (run / "bin" / "poweroff").chmod(0o755)
        readable = [p for p in _local_inputs(self.user_data) if not p.is_relative_to(cache)]
        prefix = buildroot.bwrap_prefix(
            root.path, writable=[cache], readable=readable, opt=self.home / "root" / "opt"
        )
        return [
            *prefix,
            "--unshare-pid",
            "--bind",
            str(self.home / "disk"),
            "/srv",
            "--bind",
            str(run),
            RUN_DIR,
            "--setenv",
            "PATH",
            f"{RUN_DIR}/bin:{buildroot.ROOT_PATH}",
            "--setenv",
            "HOME",
            "/root",
            "--setenv",
            "RLAYER_CACHE_DIR",
            str(cache),
            "--setenv",
            "RLAYER_BUILD_OS",
            root.identity,
            "sh",
            f"{RUN_DIR}/user-data",
        ]

    def start(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        argv = self.argv()
        env = {k: os.environ[k] for k in PASSED_ENV if k in os.environ}
        with self.console_path.open("ab") as console:
            # Its own process group: ending the machine signals bwrap and what it runs.
            self.proc = subprocess.Popen(
                argv,
                cwd="/",
                env={"PATH": os.environ.get("PATH", buildroot.ROOT_PATH), **env},
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                process_group=0,
            )

    def supervise(self, gone: Callable[[], bool], interval_s: float = 0.2) -> None:
        """Wait until the machine powers off, its script ends, or ``gone()`` says the
        instance was terminated from outside; then nothing of it runs any more."""
        assert self.proc is not None
        while self.proc.poll() is None:
            if (self.home / "run" / "powered-off").exists():
                self.powered_off = True
                break
            if gone():
                break
            time.sleep(interval_s)
        self.kill()

    def kill(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        # bwrap is the namespace's parent: with it, every process in the namespace dies.
        signal_group(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


def _local_inputs(user_data: str) -> list[Path]:
    """Local files the build reads (bound read-only where outside the cache): the prepared
    R sources and repositories, and the R source and repository the user data names when
    they are paths on this machine (a stack configured with a tarball of its own)."""
    found = local_sources()
    values = [found.r_source_template, found.cran_repo_template] if found else []
    for match in _INPUT_RE.finditer(user_data):
        values += shlex.split(match["value"])
    paths = set()
    for value in values:
        path = Path(value.removeprefix("file://"))
        if not path.is_absolute():
            continue
        # A template's {version}: its directory is what the build reads from.
        paths.add(path.parent if "{" in path.name or path.is_file() else path)
    return sorted(p for p in paths if p.exists())
