"""The wheel carries every file the package needs: a task without its `scores.json` has no recorded base or
reference, so an installed (not editable) ptb-gym silently paid raw gain for it (found on the GPU machine, which
installs ptb-gym from a wheel)."""

import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# source folder -> where the wheel puts it, from pyproject.toml's package-dir ("ptb_gym.envs" = "envs")
PACKAGE_DIRS = {folder: package.replace(".", "/") for package, folder in
                tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"].items()}
NOT_SHIPPED = {"envs/CALIBRATION.md"}  # documentation for the repository's readers


def test_the_wheel_carries_every_tracked_file_of_the_packages(tmp_path):
    tracked = subprocess.run(["git", "ls-files", "pyproject.toml", "README.md", *PACKAGE_DIRS], cwd=REPO,
                             capture_output=True, text=True, check=True).stdout.split()
    source = tmp_path / "source"  # the tracked files only: a build/ left by an earlier build would hide a gap
    for path in tracked:
        (source / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REPO / path, source / path)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(tmp_path), str(source)], check=True, capture_output=True)
    [wheel] = tmp_path.glob("ptb_gym-*.whl")
    expected = {PACKAGE_DIRS[path.split("/")[0]] + path[path.index("/"):] for path in tracked
                if "/" in path and path not in NOT_SHIPPED}
    missing = expected - set(zipfile.ZipFile(wheel).namelist())
    assert not missing, f"pyproject.toml's package-data leaves out {sorted(missing)}"
