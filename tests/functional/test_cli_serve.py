"""`rlayer serve` as a user runs it: a process that serves until Ctrl-C, then stops."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from rlayer.builders.sources import REPO_ROOT
from rlayer.client import ApiClient

BANNER = re.compile(r"^rlayer API\s+(http://127\.0\.0\.1:\d+)")


def test_serve_answers_on_127_0_0_1_and_ctrl_c_stops_everything(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "rlayer.cli", "serve", "--port", "0", "--data", str(tmp_path)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        url = None
        deadline = time.monotonic() + 60
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            match = BANNER.match(line)
            url = match.group(1) if match else None
        assert url, "".join(lines)
        assert ApiClient(url).list_builds().builds == []
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
        took = time.monotonic() - started
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out
    assert "stopping the local stack" in out and out.rstrip().endswith("stopped.")
    assert "Traceback" not in out
    host, port = url.removeprefix("http://").split(":")
    with socket.socket() as sock:
        assert sock.connect_ex((host, int(port))) != 0
    assert took < 15, f"stopping took {took:.1f} s"
