"""The EC2 instance's scripts: the phases it runs are buildspec.yml's, and the user data
template is a shell script with one place for the build's exports."""

from __future__ import annotations

import shlex
import subprocess

from chalicelib.builders.ec2 import EXPORTS_MARK, USER_DATA_TEMPLATE
from rlayer.builders.buildspec import Buildspec
from rlayer.builders.sources import REPO_ROOT

EC2_BUILD = REPO_ROOT / "buildspec" / "ec2-build.sh"


def ec2_phases() -> list[tuple[str, str]]:
    text = EC2_BUILD.read_text()
    block = text.split("PHASES='", 1)[1].split("'\n", 1)[0]
    return [tuple(line.split("|", 1)) for line in block.splitlines()]  # type: ignore[misc]


def test_the_instance_runs_exactly_the_buildspec_phases_in_order() -> None:
    expected = [
        (phase, command)
        for phase, commands in Buildspec.load().ordered_phases()
        for command in commands
    ]
    assert ec2_phases() == expected


def test_the_scripts_are_shell_the_instance_can_parse() -> None:
    for script in (EC2_BUILD, USER_DATA_TEMPLATE):
        done = subprocess.run(["sh", "-n", str(script)], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr


def test_the_template_takes_the_exports_once_before_anything_runs() -> None:
    text = USER_DATA_TEMPLATE.read_text()
    assert text.startswith("#!/bin/sh\n")
    assert text.count(EXPORTS_MARK) == 1
    before = text.split(EXPORTS_MARK, 1)[0]
    # Only comments come before the exports: every command sees them.
    assert all(line.startswith("#") for line in before.splitlines())
    # Every variable the template reads from the backend is one it exports.
    for name in ("RLAYER_EC2_SOURCE_URL", "RLAYER_EC2_UPLOAD_URL", "RLAYER_EC2_FORM"):
        assert f"${name}" in text or f"${{{name}" in text
    assert "poweroff" in shlex.split(text, comments=True)
