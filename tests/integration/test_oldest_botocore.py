"""The AWS adapters against the oldest boto3/botocore pyproject.toml allows.

The deployment package carries no botocore: Lambda's Python runtime provides one, and it
lags PyPI. So the adapters' tests run again here with that floor first on sys.path,
installed once into the cache (outside the repository).
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from rlayer.builders.sources import cache_dir

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
# The adapters' callers: the store, the API, the pipeline's tasks, subscriptions.
SUITES = [
    "tests/functional/test_store.py",
    "tests/functional/test_builds_api.py",
    "tests/functional/test_pipeline_tasks.py",
    "tests/functional/test_subscriptions.py",
]
# boto3 X.Y.0 was released with botocore X.Y.0 and s3transfer 0.9.0 (for 1.34).
S3TRANSFER = {"1.34": "0.9.0"}


def _floor() -> str:
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    spec = next(d for d in deps if d.startswith("boto3"))
    match = re.search(r">=\s*(\d+\.\d+)", spec)
    assert match, spec
    return match.group(1)


def test_the_adapters_work_with_the_oldest_botocore_allowed() -> None:
    floor = _floor()
    target = cache_dir() / f"oldest-botocore-{floor}.0"
    if not (target / "botocore").is_dir():
        subprocess.run(
            [
                *(sys.executable, "-m", "pip", "install", "-q", "--no-deps"),
                *("--target", str(target)),
                f"boto3=={floor}.0",
                f"botocore=={floor}.0",
                f"s3transfer=={S3TRANSFER[floor]}",
            ],
            check=True,
            capture_output=True,
            timeout=600,
        )
    env = {"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"}
    version = subprocess.run(
        [sys.executable, "-c", "import botocore; print(botocore.__version__)"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert version == f"{floor}.0"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *SUITES],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
