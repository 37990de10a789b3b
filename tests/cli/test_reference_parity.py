"""End to end: the official Light-Weight RefineNet MobileNet-v2 weights, converted with convert_weights.py,
give the official logits through inference.py --save-logits (needs ../shared/reference; torch is not needed)."""

import numpy as np
import pytest

from tests.support.scripts import run_script

pytestmark = pytest.mark.slow  # the official reference through the scripts


@pytest.mark.parametrize("size", ["96x128", "101x133"])
def test_inference_reproduces_reference_logits(shared_reference, tmp_path, size):
    checkpoint_dir = tmp_path / "mbv2"
    converted = run_script("convert_weights.py", shared_reference / "mbv2.pth", "--source", "lw-refinenet", "--arch",
                           "lw-refinenet-mobilenetv2", "--num-classes", "21", "--output-dir", checkpoint_dir)
    assert converted.returncode == 0, converted.stderr[-2000:]
    logits_path = tmp_path / "logits.npy"
    result = run_script("inference.py", shared_reference / f"input_{size}.png", checkpoint_dir, "--save-dir",
                        tmp_path / "out", "--save-logits", logits_path)
    assert result.returncode == 0, result.stderr[-2000:]

    ours = np.load(logits_path)
    reference = np.load(shared_reference / f"mbv2_{size}_logits.npy")
    assert ours.shape == reference.shape
    difference = np.abs(ours - reference).max()
    value_range = reference.max() - reference.min()
    assert difference < 1e-4 * value_range, f"max abs difference {difference:.3g} vs range {value_range:.3g}"
    assert (tmp_path / "out" / f"input_{size}_colour.png").is_file()
