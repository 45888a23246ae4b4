"""Where a local runtime process runs, and the process itself.

A :class:`Sandbox` is one function's execution environment on this machine: its layers
merged into one directory (zips unzipped in order, later layers overwriting earlier ones,
as Lambda does) that bubblewrap binds read-only at ``/opt``, the function code at
``/var/task``, a private ``/tmp``, and the host's network namespace so the runtime reaches
the Runtime API emulator on loopback. With layers, the root around them is shaped like
provided.al2023 (``rlayer.local.lambda_root``): none of the host's /usr, /lib or /etc.
Without layers the runtime of this repository runs with host R, in a sandbox that sees the
host's system directories or directly on the host (handler development).

A :class:`RuntimeProcess` is one start of the bootstrap in it: output captured (stdout and
stderr merged, as CloudWatch shows them), memory read from /proc, killed as a group.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import stat
import subprocess
import tempfile
import threading
import zipfile
from collections.abc import Callable, Mapping, Sequence
from enum import StrEnum
from functools import lru_cache
from pathlib import Path, PurePosixPath

from chalicelib.errors import ConfigurationError, RequestInvalidError
from rlayer.local import lambda_root

OPT = "/opt"
TASK_ROOT = "/var/task"
# Keep this much of a process's output (LogResult needs only the last 4 KB of an invoke).
LOG_BUFFER_BYTES = 1 << 20

LogSink = Callable[[str], None]


class SandboxMode(StrEnum):
    BWRAP = "bwrap"
    HOST = "host"


def repo_runtime_dir() -> Path:
    """runtime/bootstrap of this source tree: the bootstrap and runtime.R, flat."""
    path = Path(__file__).resolve().parents[2] / "runtime" / "bootstrap"
    if not (path / "bootstrap").is_file():
        raise ConfigurationError(
            f"the rlayer runtime is not at {path}: run from a source checkout or pass a layer"
        )
    return path


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


# ---- layers ---------------------------------------------------------------------------


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


# ---- the sandbox ----------------------------------------------------------------------


def bwrap_argv(bwrap: str, opt_dir: Path, task_root: Path, entrypoint: str) -> list[str]:
    """A read-only view of the host's system directories, the layers at /opt and the code
    at /var/task (both read-only, as on Lambda), a private /tmp, private pid/ipc/uts
    namespaces and the host network (the Runtime API is on the host's loopback)."""
    argv = [
        bwrap,
        "--die-with-parent",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--ro-bind",
        "/usr",
        "/usr",
        "--ro-bind",
        "/etc",
        "/etc",
    ]
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        host = Path("/") / name
        if host.is_symlink():  # merged /usr: /bin -> usr/bin
            argv += ["--symlink", os.readlink(host), str(host)]
        elif host.is_dir():
            argv += ["--ro-bind", str(host), str(host)]
    argv += [
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--tmpfs",
        "/tmp",
        "--dir",
        "/var",
        "--ro-bind",
        str(opt_dir),
        OPT,
        "--ro-bind",
        str(task_root),
        TASK_ROOT,
        "--chdir",
        TASK_ROOT,
        entrypoint,
    ]
    return argv


def lambda_bwrap_argv(
    bwrap: str, root: Path, opt_dir: Path, task_root: Path, entrypoint: str
) -> list[str]:
    """The Lambda-shaped root read-only at /, the layers at /opt and the code at /var/task
    (read-only, as on Lambda), a private /tmp; the host network (the Runtime API)."""
    return [
        bwrap,
        "--die-with-parent",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--ro-bind",
        str(root),
        "/",
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--tmpfs",
        "/tmp",
        "--ro-bind",
        str(opt_dir),
        OPT,
        "--ro-bind",
        str(task_root),
        TASK_ROOT,
        "--chdir",
        TASK_ROOT,
        entrypoint,
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
        if mode is SandboxMode.BWRAP and not self._bwrap:
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
        return TASK_ROOT if self.mode is SandboxMode.BWRAP else str(self.task_root)

    def prepare(self) -> None:
        """Merge the layers (once per sandbox; processes restarted after a crash reuse it)."""
        if self._opt is not None:
            return
        if self.layers and self.mode is SandboxMode.BWRAP:
            # Made once per machine from the build root (the first call may take a minute).
            self._root = lambda_root.ensure()
        layers = self.layers or [repo_runtime_dir()]
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
        if self.mode is SandboxMode.BWRAP:
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


# ---- one process ----------------------------------------------------------------------


def _descendants(pid: int) -> list[int]:
    """pid and every process below it (the bootstrap runs inside bwrap's pid namespace)."""
    found = [pid]
    i = 0
    while i < len(found):
        try:
            children = Path(f"/proc/{found[i]}/task/{found[i]}/children").read_text()
        except OSError:
            children = ""
        found.extend(int(c) for c in children.split())
        i += 1
    return found


def _status_kib(pid: int, field: bytes) -> int | None:
    """One "VmXxx:   123 kB" value of /proc/<pid>/status; None when the process is gone."""
    try:
        fd = os.open(f"/proc/{pid}/status", os.O_RDONLY)
    except OSError:
        return None
    try:
        text = os.read(fd, 8192)
    except OSError:  # it exited between the open and the read (ESRCH)
        return None
    finally:
        os.close(fd)
    start = text.find(field + b":")
    if start < 0:
        return 0  # a zombie has no memory lines
    return int(text[start + len(field) + 1 : text.index(b"\n", start)].split()[0])


class RuntimeProcess:
    """A started bootstrap: its output, its memory, and a way to end it."""

    def __init__(
        self,
        argv: Sequence[str],
        env: Mapping[str, str],
        *,
        cwd: Path,
        log_sink: LogSink | None = None,
    ) -> None:
        self._sink = log_sink
        self._lock = threading.Lock()
        self._buffer = bytearray()
        self._written = 0  # bytes ever captured; marks are offsets in this count
        self._pending_line = b""
        self._tree: list[int] | None = None
        self.proc = subprocess.Popen(
            list(argv),
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            # Its own process group: a kill reaches bwrap, the shell and R alike.
            start_new_session=True,
        )
        assert self.proc.stdout is not None
        self._fd = self.proc.stdout.fileno()
        self._reader = threading.Thread(target=self._read_loop, daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    # -- output --
    def _take(self, chunk: bytes) -> None:
        self._buffer += chunk
        self._written += len(chunk)
        if len(self._buffer) > LOG_BUFFER_BYTES:
            del self._buffer[: len(self._buffer) - LOG_BUFFER_BYTES]
        if self._sink is not None:
            lines = (self._pending_line + chunk).split(b"\n")
            self._pending_line = lines.pop()
            for line in lines:
                self._sink(line.decode(errors="replace"))

    def _read_once(self) -> bool:
        """Read what the pipe holds (call with the lock held); False at end of output."""
        chunk = os.read(self._fd, 65536)
        if not chunk:
            return False
        self._take(chunk)
        return True

    def _read_loop(self) -> None:
        while True:
            ready, _, _ = select.select([self._fd], [], [])
            if not ready:
                continue
            # Read and append under the lock, so drain() sees all or nothing of a chunk;
            # drain() may have emptied the pipe meanwhile: check again before reading.
            with self._lock:
                try:
                    more = not select.select([self._fd], [], [], 0)[0] or self._read_once()
                except (OSError, ValueError):
                    more = False
            if not more:
                break

    def drain(self) -> None:
        """Capture what the process has written so far (it flushes before it answers)."""
        with self._lock:
            try:
                while select.select([self._fd], [], [], 0)[0] and self._read_once():
                    pass
            except (OSError, ValueError):
                pass

    def note(self, line: str) -> None:
        """Add a platform line (START/END/REPORT) to the log, as Lambda does."""
        with self._lock:
            self._take(line.encode() + b"\n")

    def log_mark(self) -> int:
        with self._lock:
            return self._written

    def logs_since(self, mark: int) -> bytes:
        with self._lock:
            kept_from = self._written - len(self._buffer)
            return bytes(self._buffer[max(mark - kept_from, 0) :])

    # -- lifecycle --
    def poll(self) -> int | None:
        return self.proc.poll()

    def kill(self) -> None:
        if self.proc.poll() is None:
            # Inside first, deepest first, so that bwrap reaps its own child and exits: a
            # kill of the whole group at once orphans bwrap's pid-1 child, which stays a
            # zombie wherever the machine's init does not reap (containers, CI runners).
            inside = _descendants(self.pid)[1:]
            for pid in reversed(inside):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            try:
                self.proc.wait(timeout=2 if inside else 0)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self._reader.join(timeout=2)
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    # -- memory --
    def _tree_kib(self, field: bytes) -> int:
        # The tree (bwrap, its pid-1 reaper, R) is stable once the bootstrap has exec'd R:
        # walk it again only when one of the known processes is gone or on request.
        for fresh in (False, True):
            if fresh or self._tree is None:
                self._tree = _descendants(self.pid)
            values = [_status_kib(pid, field) for pid in self._tree]
            if None not in values:
                return sum(v for v in values if v)
        return sum(v for v in values if v)

    def refresh_tree(self) -> None:
        """Forget the process tree (after init, when the bootstrap has become R)."""
        self._tree = None

    def rss_bytes(self) -> int:
        """Resident memory now, summed over the process tree."""
        return self._tree_kib(b"VmRSS") * 1024

    def peak_rss_bytes(self) -> int:
        """Peak resident memory (VmHWM) summed over the tree: Lambda's Max Memory Used."""
        return self._tree_kib(b"VmHWM") * 1024


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
