"""The batch-norm-folded inference graph (frozen and with loaded variables) against the variable graph, bfloat16,
and the benchmark scripts."""

import re
import sys

import numpy as np
import pytest
import tensorflow as tf

from refinenet_tf.description import default_description
from refinenet_tf.errors import CheckpointError, ConfigError, DataError
from refinenet_tf.predict.graph import PredictOptions, build_predictor_graph
from refinenet_tf.predict.inference_graph import (
    CONVOLUTIONS_ONLY,
    GraphPredictor,
    InferenceGraph,
    build_inference_graph,
)
from tests.support.scripts import run_script

v1 = tf.compat.v1
REPO = __import__("pathlib").Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))
NUM_CLASSES = 5
IMAGE_SIZE = (37, 51)  # odd, not a multiple of the output stride


def random_checkpoint(description, directory):
    """Save randomly initialised weights with non-trivial batch-norm statistics; return the variable graph's
    outputs (labels, probabilities, logits at stride 4) for one image, and the checkpoint prefix."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (*IMAGE_SIZE, 3), dtype=np.uint8)
    graph = tf.Graph()
    with graph.as_default(), v1.Session(graph=graph) as session:
        v1.set_random_seed(0)
        tensors = build_predictor_graph(description)
        values = {}  # fed to the initializers in one run (a run per variable took seconds)
        for variable in v1.global_variables():
            shape, name = variable.shape.as_list(), variable.op.name
            statistics = {"gamma": rng.uniform(0.5, 1.5, shape), "beta": rng.normal(0, 0.3, shape),
                          "moving_mean": rng.normal(0, 0.3, shape), "moving_variance": rng.uniform(0.3, 2.0, shape)}
            value = statistics.get(name.rsplit("/", 1)[-1])
            if value is not None:
                values[variable.initial_value] = value.astype(np.float32)
        session.run(v1.global_variables_initializer(), values)
        outputs = session.run({"labels": tensors.labels, "probabilities": tensors.probabilities,
                               "logits_os": tensors.logits_os}, {tensors.image: image[None]})
        prefix = v1.train.Saver().save(session, str(directory / "model.ckpt"))
    return image, outputs, prefix


@pytest.fixture(scope="module")
def saved_model(module_tmp):
    """``saved_model(arch)``: (image, variable-graph outputs, checkpoint), built once per module."""
    cache = {}

    def get(arch):
        if arch not in cache:
            cache[arch] = random_checkpoint(default_description(arch, NUM_CLASSES), module_tmp(arch))
        return cache[arch]
    return get


def assert_labels_match_except_ties(labels, expected_labels, probabilities, tolerance):
    differ = labels != expected_labels
    top_two = np.sort(probabilities, axis=-1)[..., -2:]
    assert np.all(top_two[differ, 1] - top_two[differ, 0] < tolerance), "labels differ where the top class is clear"


@pytest.mark.slow  # freezes and folds two models
@pytest.mark.parametrize("arch", ["lw-refinenet-mobilenetv2", "lw-refinenet-resnet50"])
def test_folded_graph_equals_variable_graph(arch, saved_model):
    description = default_description(arch, NUM_CLASSES)
    image, expected, checkpoint = saved_model(arch)
    inference_graph = build_inference_graph(description, checkpoint)
    graph_def = inference_graph.frozen()

    ops = [node.op for node in graph_def.node]
    assert not any(op.startswith("FusedBatchNorm") for op in ops) and "Placeholder" in ops  # the image only
    assert sum(node.name.endswith("/folded_biases") for node in graph_def.node) > 10
    span = np.ptp(expected["logits_os"])
    assert span > 0
    for model in (graph_def, inference_graph):  # constants (an export) and weights loaded into variables
        with GraphPredictor(model, threads=2) as predictor:
            result = predictor.predict(image)
        np.testing.assert_allclose(result["logits_os"], expected["logits_os"], atol=1e-4 * span, rtol=0)
        np.testing.assert_allclose(result["probabilities"], expected["probabilities"], atol=1e-4 * span)
        assert result["labels"].shape == IMAGE_SIZE and result["labels"].dtype == np.int32
        assert_labels_match_except_ties(result["labels"], expected["labels"], expected["probabilities"], 1e-3)


@pytest.mark.slow  # builds and freezes a model
def test_prediction_keeps_one_copy_of_the_weights(saved_model):
    description = default_description("lw-refinenet-mobilenetv2", NUM_CLASSES)
    _, _, checkpoint = saved_model("lw-refinenet-mobilenetv2")
    reader = tf.train.load_checkpoint(checkpoint)
    parameters = sum(reader.get_tensor(name).size for name in reader.get_variable_to_shape_map())
    inference_graph = build_inference_graph(description, checkpoint, PredictOptions((1.0, 0.5), flip=True))
    assert isinstance(inference_graph, InferenceGraph)
    stored = sum(int(np.prod(weight.shape)) for weight in inference_graph.weights.values())
    assert stored < parameters  # folded: no batch-norm statistics, and one copy for both scales
    with GraphPredictor(inference_graph) as predictor:
        constants = [op for op in predictor.graph.get_operations() if op.type == "Const"]
        constant_bytes = sum(op.get_attr("value").ByteSize() for op in constants)
        handles = [op for op in predictor.graph.get_operations() if op.type == "VarHandleOp"]
        variable_elements = sum(int(np.prod(tf.TensorShape(op.get_attr("shape")).as_list())) for op in handles)
    assert constant_bytes < 0.01 * 4 * parameters, constant_bytes  # the weights are not in the graph...
    assert variable_elements == stored  # ... but in variables, once

@pytest.mark.slow  # freezes a model three times
def test_bfloat16_graph_stays_close_to_float32(saved_model):
    description = default_description("lw-refinenet-mobilenetv2", NUM_CLASSES)
    image, expected, checkpoint = saved_model("lw-refinenet-mobilenetv2")
    bfloat16 = tf.bfloat16.as_datatype_enum
    chained = build_inference_graph(description, checkpoint, precision="bfloat16")
    per_convolution = build_inference_graph(description, checkpoint, precision="bfloat16",
                                            bfloat16_ops=CONVOLUTIONS_ONLY)
    for model in (chained, per_convolution):
        nodes = model.graph_def.node
        assert {node.attr["T"].type for node in nodes if node.op in ("Conv2D", "DepthwiseConv2dNative")} == {bfloat16}
        assert all(weight.dtype == tf.bfloat16 for name, weight in model.weights.items() if "folded_weights" in name)
    casts = {name: sum(node.op == "Cast" for node in model.graph_def.node)
             for name, model in (("chained", chained), ("per_convolution", per_convolution))}
    convolutions = sum(node.op in ("Conv2D", "DepthwiseConv2dNative") for node in chained.graph_def.node)
    assert casts["chained"] < 0.5 * convolutions < casts["per_convolution"], casts  # activations stay bfloat16
    assert {node.attr["T"].type for node in chained.graph_def.node if node.op in ("Relu6", "AddV2")} == {bfloat16}
    for model in (chained, per_convolution):
        with GraphPredictor(model) as predictor:
            result = predictor.predict(image)
        difference = np.abs(result["logits_os"] - expected["logits_os"]).max()
        assert 0 < difference < 0.05 * np.ptp(expected["logits_os"])  # rounded, yet close
        assert np.mean(result["labels"] == expected["labels"]) > 0.9


@pytest.mark.slow  # builds inference graphs
def test_bad_inputs_give_clear_errors(saved_model):
    description = default_description("lw-refinenet-mobilenetv2", NUM_CLASSES)
    _, _, checkpoint = saved_model("lw-refinenet-mobilenetv2")
    with pytest.raises(ConfigError, match="precision"):
        build_inference_graph(description, checkpoint, precision="float16")
    with pytest.raises(CheckpointError, match=r"clf_conv/biases has shape \[5\] .* has 5 classes, the model 6 \(num_classes\)$"):
        build_inference_graph(default_description("lw-refinenet-mobilenetv2", NUM_CLASSES + 1), checkpoint)
    with GraphPredictor(build_inference_graph(description, checkpoint)) as predictor:
        with pytest.raises(DataError, match="uint8 RGB"):
            predictor.predict(np.zeros((8, 8), np.uint8))
        with pytest.raises(ConfigError, match="unknown outputs"):
            predictor.predict(np.zeros((8, 8, 3), np.uint8), ("scores",))


def test_markdown_sections_are_replaced_not_duplicated(tmp_path):
    from common import write_section

    path = tmp_path / "BENCH.md"
    write_section(path, "one", "First", "old body")
    write_section(path, "two", "Second", "kept body")
    write_section(path, "one", "First", "new body")
    text = path.read_text()
    assert text.count("## First") == 1 and "new body" in text and "old body" not in text
    assert "kept body" in text and text.index("## First") < text.index("## Second")
    assert "1382 ms" in text  # the reference table of the header


def run_benchmark(name, *arguments):
    """A benchmark script with ``--quick``, its main process in this one (its workers are processes of their own)."""
    completed = run_script(f"benchmarks/{name}", "--quick", *arguments)
    assert completed.returncode == 0, completed.stderr[-2000:]
    return completed


@pytest.mark.slow  # runs a benchmark script
def test_inference_benchmark_quick_mode_writes_its_section(tmp_path):
    output = tmp_path / "BENCH.md"
    run_benchmark("bench_inference.py", "--archs", "lw-refinenet-mobilenetv2", "--output", str(output))
    text = output.read_text()
    assert "<!-- benchmark:inference -->" in text
    rows = [line for line in text.splitlines() if line.startswith("| lw-refinenet-mobilenetv2 |")]
    assert [row.split("|")[4].strip() for row in rows] == ["session", "predictor", "bfloat16"]  # the defaults
    assert all(re.search(r"\| \d+ \(\d+-\d+\) \|", row) for row in rows)


@pytest.mark.slow  # runs the benchmark scripts
@pytest.mark.parametrize("script, section, variants", [
    ("bench_reader.py", "reader", ["| train:", "| eval:"]), ("bench_crf.py", "crf", []),
    ("bench_training.py", "training", ["| float32 |", "| bfloat16 |", "| backward Conv2DBackpropFilter |"]),
    ("bench_tiled.py", "tiled", ["| whole image |", "| tiled 64x64", "| batch-2 |"])])
def test_other_benchmarks_quick_mode(script, section, variants, tmp_path):
    output = tmp_path / "BENCH.md"
    extra = ["--archs", "lw-refinenet-mobilenetv2", "--ops"] if script == "bench_training.py" else []
    run_benchmark(script, "--output", str(output), *extra)
    text = output.read_text()
    body = text[text.index(f"<!-- benchmark:{section} -->"):text.index(f"<!-- /benchmark:{section} -->")]
    assert "- Machine:" in body and "TensorFlow" in body
    assert re.search(r"\| \d+ \(\d+-\d+\) \|", body) or "Not measured" in body  # a timing row, or why not
    assert all(variant in body for variant in variants)  # --quick still runs every kind of variant


@pytest.mark.slow  # runs a benchmark script
def test_memory_estimate_benchmark_quick_mode_compares_the_estimate_with_a_real_prediction(tmp_path):
    output = tmp_path / "BENCH.md"
    run_benchmark("bench_memory_estimate.py", "--sides", "1024", "--output", str(output))
    rows = [line.split("|")[1:-1] for line in output.read_text().splitlines()
            if line.startswith("| lw-refinenet-mobilenetv2 |")]
    assert [row[1].strip() for row in rows] == ["one scale", "3 scales + flip"]
    for row in rows:
        real, estimate, ratio = float(row[3]), float(row[4]), float(row[5])
        assert real > 0 and ratio == pytest.approx(estimate / real, abs=0.01)
        # the estimate behind --tile auto bounds a whole 1024x1024 prediction without overstating it much:
        # measured 1.4-1.8x (oneDNN on and off); the sum of every activation, used before, was 8-11x
        assert 1 <= ratio <= 3, row
