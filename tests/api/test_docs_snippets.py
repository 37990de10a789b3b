"""The documentation runs: every ```python block of docs/API.md in order, and examples/segment_an_image.ipynb."""

import importlib.util
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "API.md"
NOTEBOOK = REPO / "examples" / "segment_an_image.ipynb"
BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)
NEEDS = re.compile(r"^# needs: (.+)$", re.MULTILINE)


def python_blocks(text: str) -> list[str]:
    return BLOCK.findall(text)


def missing_modules(block: str) -> list[str]:
    """Modules a block declares with a ``# needs: a b`` line that are not installed."""
    needed = [name for line in NEEDS.findall(block) for name in line.split()]
    return [name for name in needed if importlib.util.find_spec(name) is None]


def test_the_document_has_snippets_for_every_api_call():
    code = "\n".join(python_blocks(DOC.read_text(encoding="utf-8")))
    for call in ("RefineNet(", ".train(", ".deploy(", ".eval(", ".export(", "tf.saved_model.load", "tf.lite.Interpreter",
                 "onnxruntime.InferenceSession"):
        assert call in code


@pytest.mark.slow  # trains, evaluates and exports through the documented API
@pytest.mark.filterwarnings("ignore:.*tf.lite.Interpreter is deprecated:UserWarning")
def test_python_snippets_run_in_order(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__docs__"}
    skipped = []
    for number, block in enumerate(python_blocks(DOC.read_text(encoding="utf-8")), start=1):
        missing = missing_modules(block)
        if missing:
            skipped.append(f"block {number} needs {', '.join(missing)}")
            continue
        try:
            exec(compile(block, f"{DOC.name} python block {number}", "exec"), namespace)
        except Exception as error:
            raise AssertionError(f"{DOC.name} python block {number} failed: {error!r}\n{block}") from error
    namespace["r"].close()
    assert (tmp_path / "snapshots" / "model.ckpt-10.index").is_file()
    assert (tmp_path / "results.json").is_file() and (tmp_path / "scene_00001_mask.png").is_file()
    if skipped:
        pytest.skip("; ".join(skipped))


@pytest.mark.slow  # runs the notebook in a kernel
def test_the_example_notebook_runs_and_shows_the_segmentation(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat", reason="running the notebook needs nbformat, nbclient and ipykernel")
    nbclient = pytest.importorskip("nbclient", reason="running the notebook needs nbformat, nbclient and ipykernel")
    pytest.importorskip("ipykernel", reason="running the notebook needs nbformat, nbclient and ipykernel")
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    assert not [output for output in outputs if output.output_type == "error"]
    assert any("image/png" in output.get("data", {}) for output in outputs), "the segmentation was not displayed"
    text = "".join(output.get("text", "") for output in outputs)
    assert "trained 20 steps" in text and "pixels labelled as in the ground truth" in text
