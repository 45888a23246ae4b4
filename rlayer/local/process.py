"""One start of a bootstrap: its output captured (stdout and stderr merged, as CloudWatch
shows them), its memory read from /proc, killed as a group."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

# Keep this much of a process's output (LogResult needs only the last 4 KB of an invoke).
LOG_BUFFER_BYTES = 1 << 20

LogSink = Callable[[str], None]


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


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _field_kib(text: bytes, field: bytes) -> int:
    """One "VmXxx:   123 kB" value of a /proc/<pid>/status text (0 for a zombie)."""
    start = text.find(field + b":")
    if start < 0:
        return 0  # a zombie has no memory lines
    return int(text[start + len(field) + 1 : text.index(b"\n", start)].split()[0])


class _StatusFiles:
    """/proc/<pid>/status of the processes watched, each kept open: a pread at offset 0
    regenerates the file, so a look at memory after every event costs one system call,
    not three. A descriptor stays bound to its process: a pid reused later reads ESRCH."""

    def __init__(self) -> None:
        self._fds: dict[int, int] = {}

    def read(self, pid: int) -> bytes | None:
        """The status text; None when the process is gone."""
        fd = self._fds.get(pid)
        if fd is None:
            try:
                fd = os.open(f"/proc/{pid}/status", os.O_RDONLY)
            except OSError:
                return None
            self._fds[pid] = fd
        try:
            return os.pread(fd, 8192, 0)
        except OSError:  # it exited (ESRCH)
            self._fds.pop(pid, None)
            os.close(fd)
            return None

    def keep_only(self, pids: Sequence[int]) -> None:
        for pid in [p for p in self._fds if p not in pids]:
            os.close(self._fds.pop(pid))

    def close(self) -> None:
        self.keep_only(())


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
        self._status = _StatusFiles()
        self._memory_lock = threading.Lock()  # invokes run side by side (max concurrency)
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
        with self._memory_lock:
            self._status.close()
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    # -- memory --
    def _tree_kib(self, field: bytes) -> int:
        # The tree (the bootstrap, become R, and its children) is stable once the bootstrap
        # has exec'd R: walk it again only when one of the known processes is gone or on
        # request. bwrap's own processes are this machine's sandbox, not the function's:
        # Lambda's figures have no such thing, so they are left out.
        with self._memory_lock:
            for fresh in (False, True):
                if fresh or self._tree is None:
                    self._tree = [p for p in _descendants(self.pid) if _comm(p) != "bwrap"]
                    self._status.keep_only(self._tree)
                texts = [self._status.read(pid) for pid in self._tree]
                if None not in texts:
                    break
        return sum(_field_kib(text, field) for text in texts if text is not None)

    def refresh_tree(self) -> None:
        """Forget the process tree (after init, when the bootstrap has become R)."""
        self._tree = None

    def rss_bytes(self) -> int:
        """Resident memory now, summed over the process tree."""
        return self._tree_kib(b"VmRSS") * 1024

    def peak_rss_bytes(self) -> int:
        """Peak resident memory (VmHWM) summed over the tree: Lambda's Max Memory Used."""
        return self._tree_kib(b"VmHWM") * 1024
