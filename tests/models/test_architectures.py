"""Architecture facts: parameter counts, output shapes, forward passes, variable names, options."""

import functools

import numpy as np
import pytest
import tensorflow as tf

from refinenet_tf.architectures import ARCHITECTURES, RESNET_STAGE_BLOCKS
from refinenet_tf.cli.info import model_info
from refinenet_tf.description import default_description
from refinenet_tf.models.complexity import count_parameters
from refinenet_tf.models.model import build_model

v1 = tf.compat.v1

# Published parameter counts at 21 classes (millions): Light-Weight RefineNet paper, refinenet-pytorch.
PUBLISHED_PARAMETERS_M = {
    "lw-refinenet-resnet50": 27.36,
    "lw-refinenet-resnet101": 46.35,
    "lw-refinenet-resnet152": 61.99,
    "lw-refinenet-mobilenetv2": 3.29,
    "refinenet-resnet101": 118.05,
}


def build(arch, size=(33, 47), num_classes=21, **kwargs):
    graph = tf.Graph()
    with graph.as_default():
        images = v1.placeholder(tf.float32, [1, *size, 3])
        output = build_model(images, default_description(arch, num_classes), **kwargs)
    return graph, images, output


ODD_SIZE = (97, 131)


@functools.cache
def built(arch):
    """``arch`` at 21 classes on an odd-sized input, built once for the tests of this file that only read it."""
    return build(arch, ODD_SIZE)


@pytest.mark.slow  # builds each architecture
@pytest.mark.parametrize("arch", sorted(PUBLISHED_PARAMETERS_M))
def test_parameter_count_matches_published(arch):
    graph, _, _ = built(arch)
    with graph.as_default():
        count = count_parameters(v1.global_variables())
    published = PUBLISHED_PARAMETERS_M[arch] * 1e6
    assert abs(count - published) / published < 0.002, f"{arch}: {count / 1e6:.3f} M vs published {published / 1e6} M"


@pytest.mark.slow  # builds two architectures
@pytest.mark.parametrize(("arch", "multiply_adds_g"), [("lw-refinenet-mobilenetv2", 9.7), ("refinenet-resnet101", 298.3)])
def test_info_gives_the_reference_output_shape_and_multiply_adds(arch, multiply_adds_g):
    # The PyTorch reference's multiply-adds at 468x625 (issue 8 table); ours counts convolutions only. Every
    # architecture's output shape: test_forward_pass_on_odd_size.
    info = model_info(arch, 21, (468, 625))
    assert info["output_shape"] == [1, 117, 157, 21]
    assert info["multiply_adds_g"] == pytest.approx(multiply_adds_g, rel=0.02)


@pytest.mark.slow  # every architecture's forward pass
@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_forward_pass_on_odd_size(arch):
    height, width = ODD_SIZE
    graph, images, output = built(arch)
    with graph.as_default(), v1.Session(graph=graph) as session:
        session.run(v1.global_variables_initializer())
        logits = session.run(output.logits, {images: np.random.RandomState(0).rand(1, height, width, 3)})
    assert logits.shape == (1, 25, 33, 21)
    assert np.isfinite(logits).all() and logits.std() > 0
    strides = {"l1": 4, "l2": 8, "l3": 16, "l4": 32}
    for name, stride in strides.items():
        shape = output.end_points[name].shape.as_list()
        assert shape[1:3] == [-(-height // stride), -(-width // stride)], name


@pytest.mark.slow  # runs a model at several sizes
def test_dynamic_input_size():
    graph = tf.Graph()
    with graph.as_default():
        images = v1.placeholder(tf.float32, [None, None, None, 3])
        output = build_model(images, default_description("lw-refinenet-mobilenetv2", 3))
        with v1.Session() as session:
            session.run(v1.global_variables_initializer())
            for height, width in ((64, 64), (70, 51)):
                logits = session.run(output.logits, {images: np.zeros((2, height, width, 3))})
                assert logits.shape == (2, -(-height // 4), -(-width // 4), 3)


def expected_deeplab_resnet_names(depth):
    """DeepLab-ResNet-TF (Caffe) names, written out from the Caffe naming rule independently of our builder."""
    names = {"conv1/weights"} | {f"bn_conv1/{v}" for v in ("gamma", "beta", "moving_mean", "moving_variance")}
    for stage, count in zip(range(2, 6), RESNET_STAGE_BLOCKS[depth], strict=True):
        if depth > 50 and stage in (3, 4):
            blocks = ["a"] + [f"b{i}" for i in range(1, count)]
        else:
            blocks = "abcdefghijklmnopqrstuvwxyz"[:count]
        for block in blocks:
            branches = ["branch1", "branch2a", "branch2b", "branch2c"] if block == "a" else ["branch2a", "branch2b",
                                                                                             "branch2c"]
            for branch in branches:
                names.add(f"res{stage}{block}_{branch}/weights")
                names |= {f"bn{stage}{block}_{branch}/{v}" for v in ("gamma", "beta", "moving_mean", "moving_variance")}
    return names


@pytest.mark.slow  # builds ResNet graphs
@pytest.mark.parametrize("depth", [50, 101, 152])
def test_resnet_variable_names_follow_deeplab(depth):
    graph, _, _ = built(f"lw-refinenet-resnet{depth}")
    with graph.as_default():
        names = {v.op.name for v in v1.global_variables()}
    backbone = {n for n in names if n.startswith(("conv1/", "bn_conv1/", "res", "bn"))}
    assert backbone == expected_deeplab_resnet_names(depth)
    if depth == 101:
        for index in range(1, 23):
            assert f"res4b{index}_branch2c/weights" in names
            assert f"bn4b{index}_branch2a/moving_variance" in names
        assert "res4b23_branch2a/weights" not in names


@pytest.mark.slow  # builds a full RefineNet
def test_full_refinenet_decoder_names_follow_refinenet_pytorch():
    graph, _, _ = built("refinenet-resnet101")
    with graph.as_default():
        shapes = {v.op.name: v.shape.as_list() for v in v1.global_variables()}
    assert shapes["p_ims1d2_outl1_dimred/weights"] == [3, 3, 2048, 512]
    assert shapes["adapt_stage1_b/2_conv/biases"] == [512]
    assert shapes["adapt_stage1_b/2_conv_relu_varout_dimred/weights"] == [3, 3, 512, 512]
    assert "adapt_stage1_b/2_conv_relu_varout_dimred/biases" not in shapes
    assert shapes["mflow_conv_g1_pool/4_outvar_dimred/weights"] == [3, 3, 512, 512]
    assert shapes["mflow_conv_g1_b/3_conv/weights"] == [3, 3, 512, 512]
    assert shapes["mflow_conv_g4_b/3_conv_relu_varout_dimred/weights"] == [3, 3, 256, 256]
    assert "mflow_conv_g4_b3_joint_varout_dimred/weights" not in shapes
    assert shapes["adapt_stage4_b2_joint_varout_dimred/weights"] == [3, 3, 256, 256]
    assert shapes["clf_conv/weights"] == [3, 3, 256, 21] and shapes["clf_conv/biases"] == [21]


@pytest.mark.slow  # builds a ResNet model
def test_lightweight_decoder_uses_1x1_convs_and_no_rcu():
    graph, _, _ = built("lw-refinenet-resnet50")
    with graph.as_default():
        shapes = {v.op.name: v.shape.as_list() for v in v1.global_variables()}
    assert shapes["p_ims1d2_outl1_dimred/weights"] == [1, 1, 2048, 512]
    assert shapes["mflow_conv_g1_pool/1_outvar_dimred/weights"] == [1, 1, 512, 512]
    assert shapes["mflow_conv_g3_b3_joint_varout_dimred/weights"] == [1, 1, 256, 256]
    assert not any("adapt_stage1_b/" in name or "mflow_conv_g1_b/" in name for name in shapes)


def conv_strides(graph, scope):
    op = graph.get_operation_by_name(f"{scope}/Conv2D")
    return op.get_attr("strides")[1]


@pytest.mark.slow  # builds ResNet graphs
def test_stride_placement_option():
    for stride_on, reduce_stride, middle_stride in (("1x1", 2, 1), ("3x3", 1, 2)):
        graph = tf.Graph()
        with graph.as_default():
            images = v1.placeholder(tf.float32, [1, 64, 64, 3])
            build_model(images, default_description("lw-refinenet-resnet50", 3, stride_on=stride_on))
        assert conv_strides(graph, "res3a_branch2a") == reduce_stride
        assert conv_strides(graph, "res3a_branch2b") == middle_stride
        assert conv_strides(graph, "res2a_branch2a") == 1


def test_symmetric_padding_centres_stride_two_windows():
    # A single bright pixel at (1, 1) of an even-sized input: with symmetric padding the stem's 3x3 max pool
    # window of output (0, 0) covers input rows/cols -1..1 and sees it; TF 'same' pads bottom/right only,
    # so output (0, 0) covers 0..2 and sees it too, but output (1, 1) differs: same covers 2..4, symmetric 1..3.
    from refinenet_tf.models.layers import LayerOptions, max_pool

    image = np.zeros((1, 8, 8, 1), np.float32)
    image[0, 1, 1, 0] = 1.0
    results = {}
    for padding in ("same", "symmetric"):
        with tf.Graph().as_default(), v1.Session() as session:
            pooled = max_pool(tf.constant(image), 3, 2, LayerOptions(padding=padding))
            results[padding] = session.run(pooled)[0, :, :, 0]
    assert results["symmetric"][1, 1] == 1.0 and results["same"][1, 1] == 0.0
    assert results["symmetric"].shape == results["same"].shape == (4, 4)


@pytest.mark.slow  # builds and runs a model in training and inference mode
def test_batch_norm_frozen_unless_trained():
    graph, _, _ = built("lw-refinenet-mobilenetv2")
    with graph.as_default():
        assert not v1.get_collection(v1.GraphKeys.UPDATE_OPS)
        trainable = {v.op.name for v in v1.trainable_variables()}
    assert "layer1/bn/gamma" not in trainable and "layer1/conv/weights" in trainable

    graph, images, output = build("lw-refinenet-mobilenetv2", train_batch_norm=True)
    with graph.as_default(), v1.Session(graph=graph) as session:
        updates = v1.get_collection(v1.GraphKeys.UPDATE_OPS)
        assert "layer1/bn/gamma" in {v.op.name for v in v1.trainable_variables()}
        session.run(v1.global_variables_initializer())
        mean = next(v for v in v1.global_variables() if v.op.name == "layer1/bn/moving_mean")
        before = session.run(mean)
        session.run(updates, {images: np.random.RandomState(1).rand(1, 33, 47, 3) * 50})
        assert np.abs(session.run(mean) - before).max() > 0


@pytest.mark.slow  # two ResNet-50 graphs
def test_dropout_only_in_training():
    feed = np.random.RandomState(2).rand(1, 33, 47, 3)
    for dropout, expect_equal in ((False, True), (True, False)):
        graph, images, output = build("lw-refinenet-resnet50", dropout=dropout)
        with graph.as_default(), v1.Session(graph=graph) as session:
            session.run(v1.global_variables_initializer())
            first, second = (session.run(output.logits, {images: feed}) for _ in range(2))
        # Without dropout the two runs agree up to float32 summation order (oneDNN and several threads may
        # reorder sums from one run to the next); dropout draws new masks and moves the logits visibly.
        change = np.abs(first - second).max() / np.abs(first).max()
        assert (change < 1e-5) == expect_equal, f"dropout={dropout}: relative change {change:.2e}"


@pytest.mark.slow  # builds a model twice
def test_reuse_shares_variables():
    graph = tf.Graph()
    with graph.as_default():
        images = v1.placeholder(tf.float32, [1, 64, 64, 3])
        description = default_description("lw-refinenet-mobilenetv2", 3)
        build_model(images, description)
        count = len(v1.global_variables())
        build_model(tf.image.resize(images, [48, 48]), description, reuse=True)
        assert len(v1.global_variables()) == count


@pytest.mark.slow  # three ResNet-50 graphs
def test_seeded_dropout_draws_the_same_masks_for_the_same_seed():
    feed = np.random.RandomState(3).rand(1, 33, 47, 3)
    results = {}
    for run, step in (("first", 5), ("again", 5), ("next_step", 6)):
        graph = tf.Graph()
        with graph.as_default():
            v1.set_random_seed(0)
            images = v1.placeholder(tf.float32, [1, 33, 47, 3])
            seed = tf.constant([1234, step], tf.int64)
            output = build_model(images, default_description("lw-refinenet-resnet50", 3), dropout=True,
                                 dropout_seed=seed)
            with v1.Session() as session:
                session.run(v1.global_variables_initializer())
                results[run] = session.run(output.logits, {images: feed})
    # Same masks: equal up to float32 summation order (oneDNN and several threads may reorder sums);
    # other masks move the logits by a sizeable fraction of their range.
    scale = float(np.abs(results["first"]).max())
    np.testing.assert_allclose(results["again"], results["first"], rtol=1e-5, atol=1e-6 * scale)
    assert np.abs(results["next_step"] - results["first"]).max() > 0.05 * scale
