"""promtool check metrics finds nothing in the hand-written exposition."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.unit.test_exposition import rendered


def test_promtool_finds_nothing_to_complain_about() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian package prometheus); .ci/run installs it")
    check = subprocess.run(
        [promtool, "check", "metrics"], input=rendered(), capture_output=True, text=True, timeout=60
    )
    assert check.returncode == 0 and check.stdout + check.stderr == "", check.stdout + check.stderr
