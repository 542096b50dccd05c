"""`monitor blocks import` as a user runs it: downloaded files in, `blocks:` out, and the catalog
with those blocks validates; a malformed file or a missing source is a clear error, exit 2."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from monitor.lab.harness import monitor_command
from tests.unit.test_blocks_import import DELEGATED, IPASN


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(monitor_command(*args), capture_output=True, text=True, timeout=60, check=False)


def test_the_blocks_it_writes_validate_in_a_catalog(tmp_path: Path) -> None:
    delegated, ipasn = tmp_path / "delegated-ripencc-extended-20260101", tmp_path / "ipasn_20260101.dat"
    delegated.write_text(DELEGATED)
    ipasn.write_text(IPASN)
    out = tmp_path / "blocks.yaml"
    sources = ["--ripe-delegated", str(delegated), "--ipasn", str(ipasn)]
    run = _run("blocks", "import", "--country", "kz", *sources, "-o", str(out))
    assert run.returncode == 0, run.stderr
    assert run.stderr.strip() == (
        "3 blocks, 3 /24s on 2 networks; 1 /24s registered to KZ but announced by nobody, left out"
    )
    blocks = yaml.safe_load(out.read_text())["blocks"]
    assert blocks[0] == {
        "prefix": "198.18.0.0/24", "asn": 9198, "country": "KZ",
        "source": "delegated-ripencc-extended-20260101 + ipasn_20260101.dat",
    }  # fmt: skip
    catalog = tmp_path / "targets.yaml"
    catalog.write_text(out.read_text())
    check = _run("validate", "--config", str(catalog))
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.strip().endswith("OK, 0 targets and 0 controls, 3 blocks (3 /24s)")


def test_a_bad_source_line_or_a_missing_source_is_a_clear_error(tmp_path: Path) -> None:
    ipasn = tmp_path / "ipasn.dat"
    ipasn.write_text("; header\n198.18.0.0/23 9198 oops\n")
    run = _run("blocks", "import", "--country", "KZ", "--ipasn", str(ipasn), "--asn", "9198")
    assert run.returncode == 2 and f"{ipasn}:2: not 'prefix<TAB>asn'" in run.stderr
    run = _run("blocks", "import", "--country", "KZ", "--ripe-delegated", str(ipasn))
    assert run.returncode == 2 and "--ipasn is needed" in run.stderr
    run = _run("blocks", "import", "--country", "KZ", "--ipasn", str(tmp_path / "missing.dat"), "--asn", "1")
    assert run.returncode == 2 and "missing.dat" in run.stderr
