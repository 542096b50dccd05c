"""What the Dockerfile copies (pyproject.toml, README.md, monitor/) builds a complete package."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_docker_build_context_makes_a_wheel_with_every_module_template_and_the_console_script(
    tmp_path: Path,
) -> None:
    context = tmp_path / "context"
    context.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, context / name)
    shutil.copytree(REPO / "monitor", context / "monitor", ignore=shutil.ignore_patterns("__pycache__"))
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "-q",
            "-w",
            str(tmp_path / "dist"),
            str(context),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr
    wheel = next((tmp_path / "dist").glob("*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    sources = {
        str(path.relative_to(REPO))
        for pattern in ("*.py", "templates/*")
        for path in (REPO / "monitor").rglob(pattern)
    }
    assert sources <= names, sources - names
    entry_points = next(name for name in names if name.endswith("entry_points.txt"))
    assert "monitor = monitor.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
