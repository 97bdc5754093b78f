"""The wheel carries every file the package needs: a task without its `scores.json` has no recorded base or
reference, so an installed (not editable) ptb-gym silently paid raw gain for it (found on the GPU machine, which
installs ptb-gym from a wheel)."""

import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# source folder -> where the wheel puts it, from pyproject.toml's package-dir ("ptb_gym.envs" = "envs")
PACKAGE_DIRS = {folder: package.replace(".", "/") for package, folder in
                tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"].items()}
NOT_SHIPPED = {"envs/CALIBRATION.md"}  # documentation for the repository's readers


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The tracked files of the packages, and the wheel built from them alone (a build/ left by an earlier build
    would hide a gap)."""
    tmp_path = tmp_path_factory.mktemp("wheel")
    tracked = subprocess.run(["git", "ls-files", "pyproject.toml", "README.md", *PACKAGE_DIRS], cwd=REPO,
                             capture_output=True, text=True, check=True).stdout.split()
    source = tmp_path / "source"
    for path in tracked:
        (source / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REPO / path, source / path)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(tmp_path), str(source)], check=True, capture_output=True)
    [wheel] = tmp_path.glob("ptb_gym-*.whl")
    return tracked, wheel, source


def test_the_wheel_carries_every_tracked_file_of_the_packages(built):
    tracked, wheel, _ = built
    expected = {PACKAGE_DIRS[path.split("/")[0]] + path[path.index("/"):] for path in tracked
                if "/" in path and path not in NOT_SHIPPED}
    missing = expected - set(zipfile.ZipFile(wheel).namelist())
    assert not missing, f"pyproject.toml's package-data leaves out {sorted(missing)}"


def test_a_source_tree_that_shadows_the_installed_package_is_named_at_import(built, tmp_path):
    """ptb-gym installed from its wheel, and Python started in a checkout (as `python -m` or `-c` does, the
    current directory first on sys.path): the checkout's ptb_gym/ is imported, which has no ptb_gym.envs. The
    import says so and what to do, instead of a bare `No module named 'ptb_gym.envs'` deep in an episode."""
    _, wheel, _ = built
    installed = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target",
                    str(installed), str(wheel)], check=True, capture_output=True)
    # -S: none of this interpreter's site-packages, whose editable install would map ptb_gym.envs to the checkout
    env = {"PYTHONPATH": os.pathsep.join([str(installed), sysconfig.get_paths()["purelib"]]), "PATH": os.defpath}
    command = [sys.executable, "-S", "-c", "import ptb_gym, ptb_gym.envs; print(ptb_gym.__file__)"]
    elsewhere = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert elsewhere.returncode == 0, elsewhere.stderr
    assert elsewhere.stdout.strip() == str(installed / "ptb_gym" / "__init__.py")
    in_checkout = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert in_checkout.returncode != 0
    assert f"ptb_gym is imported from the source tree {REPO}" in in_checkout.stderr, in_checkout.stderr
    assert f"pip install -e {REPO}" in in_checkout.stderr


def test_a_second_checkout_is_not_mixed_with_the_installed_one(built):
    """Another copy of the tree (a clone for CI, a worktree), entered while an editable install points at the first:
    its ptb_gym/ would run with the first one's envs. The import names both."""
    _, _, source = built
    mixed = subprocess.run([sys.executable, "-c", "import ptb_gym"], cwd=source, capture_output=True, text=True,
                           timeout=120)
    installed = Path(importlib.util.find_spec("ptb_gym.envs").origin).parent
    assert mixed.returncode != 0
    assert f"ptb_gym is imported from the source tree {source}" in mixed.stderr, mixed.stderr
    assert f"the installed ptb-gym's are at {installed}" in mixed.stderr
