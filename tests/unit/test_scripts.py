"""The measurement scripts in scripts/ refuse bad arguments with a usage error that says what to do,
before loading any model or data (fast: each is a subprocess that stops at argument parsing)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from vision.assets import REPO


def run_script(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(REPO / "scripts" / name), *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )


@pytest.mark.parametrize(
    ("script", "args", "message"),
    [
        ("heldout_embedder.py", ["--out", "X", "--epochs", "0"], "--epochs at least 1"),
        ("heldout_embedder.py", ["--out", "X", "--image-size", "16"], "--image-size must be at least 32"),
        ("finetune_attributes.py", ["--out", "X", "--batch-size", "1"], "--batch-size at least 2"),
        ("finetune_attributes.py", ["--out", "X", "--epochs", "0"], "--epochs must be at least 1"),
        ("attribute_errors.py", ["--weights", "no-such-file.pt"], "run scripts/finetune_attributes.py"),
    ],
)
def test_scripts_reject_bad_arguments(script: str, args: list[str], message: str) -> None:
    result = run_script(script, *args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr


def test_scripts_reject_a_data_folder_without_a_manifest(tmp_path: Path) -> None:
    for script, args in (
        ("finetune_attributes.py", ["--out", str(tmp_path / "out")]),
        ("attribute_errors.py", ["--weights", str(tmp_path / "w.pt")]),
    ):
        result = run_script(script, "--hm", str(tmp_path), *args)
        assert result.returncode == 2, result.stderr
        assert "has no manifest.csv" in result.stderr
    assert not (tmp_path / "out").exists()  # nothing written on a refused run
