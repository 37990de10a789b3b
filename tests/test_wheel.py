"""The wheel is complete: built with ``python -m build`` (a wheel and an sdist) from this checkout, installed into a
fresh virtual environment outside the repository, its console scripts run a conversion and a short demo, importing
nothing from the source tree.

The fresh environment gets its third-party packages (TensorFlow and the rest, several GB) from the test's own
environment through a ``.pth`` line, after its own site-packages, so that only refinenet_tf itself comes from the
wheel: nothing is downloaded, and nothing the commands need can come from the checkout.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tests.support.sandbox import _write_labelme_folder

REPO = Path(__file__).resolve().parents[1]
NOT_SOURCE = (".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", ".ruff_cache",
              "snapshots", "output", "demo_output")
pytestmark = pytest.mark.slow  # builds a wheel, makes a virtual environment, runs the demo


def _run(*command, cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    environment = {key: value for key, value in os.environ.items()
                   if key not in ("PYTHONPATH", "PYTHONSAFEPATH") and not key.startswith("_REFINENET_TF")}
    result = subprocess.run([str(part) for part in command], cwd=cwd, env=environment, capture_output=True,
                            text=True, timeout=timeout)
    assert result.returncode == 0, f"{command}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def installed(module_tmp) -> Path:
    """A fresh virtual environment holding the wheel built from this checkout; its bin folder."""
    root = module_tmp("wheel")
    # built from a copy: an in-tree build would leave build/ in the checkout, and stale modules there would be packed
    source = shutil.copytree(REPO, root / "source", ignore=shutil.ignore_patterns(*NOT_SOURCE))
    _run(sys.executable, "-m", "build", "--no-isolation", "--outdir", root / "dist", source, cwd=root)
    (wheel,) = (root / "dist").glob("refinenet_tf-*.whl")
    (sdist,) = (root / "dist").glob("refinenet_tf-*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    assert {"pyproject.toml", "README.md", "LICENSE", "refinenet_tf/predict/graph.py",
            "refinenet_tf/data/layouts/coco.py", "refinenet_tf/archive/pipeline.py", "refinenet_tf/tf_quiet.py"} <= names
    with zipfile.ZipFile(wheel) as archive:
        assert any(name.endswith(".dist-info/licenses/LICENSE") or name.endswith(".dist-info/LICENSE")
                   for name in archive.namelist())
    _run(sys.executable, "-m", "venv", "--without-pip", root / "venv", cwd=root)
    _run(sys.executable, "-m", "pip", "--python", root / "venv" / "bin" / "python", "install", "--no-deps", "--quiet",
         wheel, cwd=root)
    purelib = Path(_run(root / "venv" / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])",
                        cwd=root).stdout.strip())
    (purelib / "zz_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
    return root / "venv" / "bin"


def test_the_installed_package_comes_from_the_wheel_not_the_checkout(installed, tmp_path):
    located = _run(installed / "python", "-c", "import refinenet_tf, refinenet_tf.predict.graph, "
                   "refinenet_tf.data.layouts.coco; print(refinenet_tf.__file__, refinenet_tf.__version__)",
                   cwd=tmp_path).stdout.split()
    assert Path(located[0]).is_relative_to(installed.parent) and not Path(located[0]).is_relative_to(REPO)
    overview = _run(installed / "refinenet-tf", "--help", cwd=tmp_path).stdout
    assert "convert-masks" in overview and "examples:" in overview


def test_console_scripts_convert_annotations_and_run_a_short_demo(installed, tmp_path):
    _write_labelme_folder(tmp_path / "annotations", np.random.default_rng(0))
    converted = _run(installed / "refinenet-convert-masks", "--layout", "labelme", "annotations", "--name", "shots",
                     "--quiet", cwd=tmp_path)
    assert "train: --data-list dataset/shots/train.txt (4 lines)" in converted.stdout
    assert converted.stderr.strip().splitlines()[-1].startswith("shots: wrote train.txt (4)")
    demo = _run(installed / "refinenet-demo", "--quick", "--num-steps", "20", "--output-dir", "demo", "--threads", "1",
                cwd=tmp_path)
    assert "held-out mIoU" in demo.stdout
    assert (tmp_path / "demo" / "results.json").is_file() and (tmp_path / "demo" / "comparison.png").is_file()
    assert (tmp_path / "demo" / "report" / "index.html").is_file()  # matplotlib comes with the test's packages
