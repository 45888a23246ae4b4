"""Where a local runtime process runs, and the process itself.

A :class:`Sandbox` is one function's execution environment on this machine: its layers
merged into one directory (zips unzipped in order, later layers overwriting earlier ones,
as Lambda does) that bubblewrap binds read-only at ``/opt``, the function code at
``/var/task``, a private ``/tmp``, and the host's network namespace so the runtime reaches
the Runtime API emulator on loopback. With layers, the root around them is shaped like
provided.al2023 (``rlayer.local.lambda_root``): none of the host's /usr, /lib or /etc.
Without layers the runtime of this repository runs with host R, in a sandbox that sees the
host's system directories or directly on the host (handler development).

Each start of the bootstrap in it is a :class:`rlayer.local.process.RuntimeProcess`; the
layers are merged by :mod:`rlayer.local.layers`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from enum import StrEnum
from functools import lru_cache
from pathlib import Path

from chalicelib.errors import ConfigurationError, RequestInvalidError
from rlayer.local import lambda_root
from rlayer.local.host_runtime import host_runtime_layer
from rlayer.local.layers import merge_layers
from rlayer.local.process import LogSink, RuntimeProcess

OPT = "/opt"
TASK_ROOT = "/var/task"


class SandboxMode(StrEnum):
    # Under bubblewrap: layers in the Lambda-shaped root (no layers: this machine's R).
    BWRAP = "bwrap"
    # Under bubblewrap, the layers over this machine's own /usr: not what Lambda has, so
    # never a proof; for measuring the loop against a baseline that needs host tools.
    BWRAP_HOST_OS = "bwrap-host-os"
    # No sandbox: this machine's R, for handler development.
    HOST = "host"

    @property
    def sandboxed(self) -> bool:
        return self is not SandboxMode.HOST


@lru_cache(maxsize=1)
def bwrap_path() -> str | None:
    """bubblewrap, if it is installed and can create a sandbox here (user namespaces)."""
    path = shutil.which("bwrap")
    if path is None:
        return None
    probe = subprocess.run(
        [path, "--ro-bind", "/", "/", "--dev", "/dev", "true"],
        capture_output=True,
        check=False,
    )
    return path if probe.returncode == 0 else None


# ---- the sandbox ----------------------------------------------------------------------


# Private pid/ipc/uts namespaces; the host network (the Runtime API is on its loopback).
_NAMESPACES = [
    "--die-with-parent",
    "--unshare-pid",
    "--unshare-ipc",
    "--unshare-uts",
    "--unshare-cgroup-try",
]


def _function_binds(opt_dir: Path, task_root: Path, entrypoint: str) -> list[str]:
    """/proc, /dev, a private /tmp, the layers at /opt and the code at /var/task (both
    read-only, as on Lambda), and the bootstrap to run there."""
    return [
        *("--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"),
        *("--ro-bind", str(opt_dir), OPT, "--ro-bind", str(task_root), TASK_ROOT),
        *("--chdir", TASK_ROOT, entrypoint),
    ]


def bwrap_argv(bwrap: str, opt_dir: Path, task_root: Path, entrypoint: str) -> list[str]:
    """The host's system directories read-only around the function (host R, no layers)."""
    argv = [bwrap, *_NAMESPACES, "--ro-bind", "/usr", "/usr", "--ro-bind", "/etc", "/etc"]
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        host = Path("/") / name
        if host.is_symlink():  # merged /usr: /bin -> usr/bin
            argv += ["--symlink", os.readlink(host), str(host)]
        elif host.is_dir():
            argv += ["--ro-bind", str(host), str(host)]
    return [*argv, "--dir", "/var", *_function_binds(opt_dir, task_root, entrypoint)]


def lambda_bwrap_argv(
    bwrap: str, root: Path, opt_dir: Path, task_root: Path, entrypoint: str
) -> list[str]:
    """The Lambda-shaped root read-only at / around the function, nothing of the host's."""
    return [
        bwrap,
        *_NAMESPACES,
        *("--ro-bind", str(root), "/"),
        *_function_binds(opt_dir, task_root, entrypoint),
    ]


class Sandbox:
    """One function's /opt and /var/task; starts :class:`RuntimeProcess` es in them."""

    def __init__(
        self,
        layers: Sequence[Path],
        task_root: Path,
        mode: SandboxMode | None = None,
    ) -> None:
        self.layers = [Path(p).resolve() for p in layers]
        self.task_root = Path(task_root).resolve()
        if not self.task_root.is_dir():
            raise RequestInvalidError(f"task root {self.task_root} is not a directory")
        for layer in self.layers:
            if not layer.exists():
                raise RequestInvalidError(f"layer {layer} does not exist")
        self._bwrap = bwrap_path()
        if mode is None:
            mode = SandboxMode.BWRAP if self._bwrap else SandboxMode.HOST
        if mode.sandboxed and not self._bwrap:
            raise ConfigurationError("bubblewrap (bwrap) is needed to mount layers at /opt")
        if mode is SandboxMode.HOST and self.layers:
            raise ConfigurationError(
                "layers are mounted at /opt, which needs bubblewrap; without it only host R "
                "(no --layer) can run"
            )
        self.mode = mode
        self._root: Path | None = None
        self._tmp: Path | None = None
        self._opt: Path | None = None
        self._entrypoint: str | None = None

    @property
    def task_root_inside(self) -> str:
        """LAMBDA_TASK_ROOT as the runtime sees it."""
        return TASK_ROOT if self.mode.sandboxed else str(self.task_root)

    def prepare(self) -> None:
        """Merge the layers (once per sandbox; processes restarted after a crash reuse it)."""
        if self._opt is not None:
            return
        if self.layers and self.mode is SandboxMode.BWRAP:
            # Made once per machine from the build root (the first call may take a minute).
            self._root = lambda_root.ensure()
        layers = self.layers or [host_runtime_layer()]
        if len(layers) == 1 and layers[0].is_dir():
            self._opt = layers[0]  # nothing to merge: bind it as it is
            return
        self._tmp = Path(tempfile.mkdtemp(prefix="rlayer-opt-"))
        merge_layers(layers, self._tmp)
        self._opt = self._tmp

    @property
    def opt_dir(self) -> Path:
        self.prepare()
        assert self._opt is not None
        return self._opt

    def entrypoint(self) -> str | None:
        """The bootstrap to run, looked up like Lambda: /var/task/bootstrap, /opt/bootstrap."""
        if self._entrypoint is None:
            for host_dir, inside in ((self.task_root, TASK_ROOT), (self.opt_dir, OPT)):
                candidate = host_dir / "bootstrap"
                if candidate.is_file() and os.access(candidate, os.X_OK):
                    host = self.mode is SandboxMode.HOST
                    self._entrypoint = str(candidate) if host else f"{inside}/bootstrap"
                    break
        return self._entrypoint

    def spawn(self, env: Mapping[str, str], log_sink: LogSink | None = None) -> RuntimeProcess:
        entry = self.entrypoint()
        if entry is None:
            raise ConfigurationError("no executable bootstrap in /var/task or /opt")
        if self.mode.sandboxed:
            assert self._bwrap is not None
            if self._root is not None:
                argv = lambda_bwrap_argv(
                    self._bwrap, self._root, self.opt_dir, self.task_root, entry
                )
            else:
                argv = bwrap_argv(self._bwrap, self.opt_dir, self.task_root, entry)
        else:
            argv = [entry]
        return RuntimeProcess(argv, env, cwd=self.task_root, log_sink=log_sink)

    def close(self) -> None:
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
        self._tmp = None
        self._opt = None
        self._entrypoint = None


def lambda_environment(
    *,
    api_address: str,
    handler: str,
    task_root: str,
    function_name: str,
    memory_mb: int,
    region: str,
    mode: SandboxMode,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The variables Lambda sets for a provided.al2023 function, then the function's own."""
    host = mode is SandboxMode.HOST
    env = {
        "AWS_LAMBDA_RUNTIME_API": api_address,
        "_HANDLER": handler,
        "LAMBDA_TASK_ROOT": task_root,
        "LAMBDA_RUNTIME_DIR": "/var/runtime",
        "AWS_LAMBDA_FUNCTION_NAME": function_name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory_mb),
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function_name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": "local/[$LATEST]rlayer",
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "TZ": ":UTC",
        # Lambda's en_US.UTF-8 may not be generated here; C.UTF-8 always is.
        "LANG": "C.UTF-8",
        # On the host, R is found on the developer's PATH.
        "PATH": os.environ.get("PATH", "/usr/bin:/bin")
        if host
        else "/usr/local/bin:/usr/bin:/bin:/opt/bin",
        "LD_LIBRARY_PATH": "/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:/var/task:"
        "/var/task/lib:/opt/lib",
    }
    if host:
        del env["LD_LIBRARY_PATH"]
        if os.environ.get("LD_LIBRARY_PATH"):
            env["LD_LIBRARY_PATH"] = os.environ["LD_LIBRARY_PATH"]
        if "HOME" in os.environ:
            env["HOME"] = os.environ["HOME"]
    env.update(extra or {})
    return env
