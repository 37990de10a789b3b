"""Numerical parity for the torchvision-style path (stride on the 3x3, symmetric padding): a PyTorch model
written here after the official Light-Weight RefineNet ResNet-50 forward pass (module names as in its state
dicts), random weights and batch-norm statistics, converted with ``--source lw-refinenet``."""

import numpy as np
import pytest

from refinenet_tf.weights.convert import convert_weights
from tests.support.weights import run_checkpoint

pytestmark = pytest.mark.slow  # a PyTorch model against the converted graph

torch = pytest.importorskip("torch", reason="the reference model runs in PyTorch")
nn = torch.nn
functional = torch.nn.functional

NUM_CLASSES = 5


def conv(in_channels, out_channels, kernel_size, stride=1, bias=False):
    return nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, bias=bias)


class Bottleneck(nn.Module):
    def __init__(self, in_channels, width, stride):
        super().__init__()
        self.conv1, self.bn1 = conv(in_channels, width, 1), nn.BatchNorm2d(width)
        self.conv2, self.bn2 = conv(width, width, 3, stride), nn.BatchNorm2d(width)
        self.conv3, self.bn3 = conv(width, 4 * width, 1), nn.BatchNorm2d(4 * width)
        self.downsample = None
        if stride != 1 or in_channels != 4 * width:
            self.downsample = nn.Sequential(conv(in_channels, 4 * width, 1, stride), nn.BatchNorm2d(4 * width))

    def forward(self, x):
        y = functional.relu(self.bn1(self.conv1(x)))
        y = functional.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return functional.relu(y + (x if self.downsample is None else self.downsample(x)))


class ChainedResidualPooling(nn.Module):
    def __init__(self, channels):
        super().__init__()
        for stage in range(1, 5):
            setattr(self, f"{stage}_outvar_dimred", conv(channels, channels, 1))

    def forward(self, x):
        top = x
        for stage in range(1, 5):
            top = getattr(self, f"{stage}_outvar_dimred")(functional.max_pool2d(top, 5, 1, 2))
            x = top + x
        return x


class LightWeightRefineNet50(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64)
        channels = 64
        for index, (width, blocks, stride) in enumerate(((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)), 1):
            layers = []
            for block in range(blocks):
                layers.append(Bottleneck(channels, width, stride if block == 0 else 1))
                channels = 4 * width
            setattr(self, f"layer{index}", nn.Sequential(*layers))
        for path, in_channels in enumerate((2048, 1024, 512, 256), 1):
            out_channels = 512 if path == 1 else 256
            setattr(self, f"p_ims1d2_outl{path}_dimred", conv(in_channels, out_channels, 1))
            if path > 1:
                setattr(self, f"adapt_stage{path}_b2_joint_varout_dimred", conv(256, 256, 1))
            setattr(self, f"mflow_conv_g{path}_pool", nn.Sequential(ChainedResidualPooling(out_channels)))
            if path < 4:
                setattr(self, f"mflow_conv_g{path}_b3_joint_varout_dimred", conv(out_channels, 256, 1))
        self.clf_conv = conv(256, NUM_CLASSES, 3, bias=True)

    def forward(self, x):
        x = functional.max_pool2d(functional.relu(self.bn1(self.conv1(x))), 3, 2, 1)
        features = []
        for index in range(1, 5):
            x = getattr(self, f"layer{index}")(x)
            features.append(x)
        x = None
        for path, feature in zip(range(1, 5), reversed(features), strict=True):
            y = getattr(self, f"p_ims1d2_outl{path}_dimred")(feature)
            if x is not None:
                y = getattr(self, f"adapt_stage{path}_b2_joint_varout_dimred")(y)
                y = y + functional.interpolate(x, size=y.shape[2:], mode="bilinear", align_corners=True)
            y = getattr(self, f"mflow_conv_g{path}_pool")(functional.relu(y))
            x = getattr(self, f"mflow_conv_g{path}_b3_joint_varout_dimred")(y) if path < 4 else y
        return self.clf_conv(x)


def test_lw_resnet50_logits_match_pytorch_on_an_odd_size(tmp_path):
    torch.manual_seed(0)
    model = LightWeightRefineNet50().eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
                module.running_mean.uniform_(-0.3, 0.3)
                module.running_var.uniform_(0.5, 2.0)
    path = tmp_path / "lw50.pth"
    torch.save(model.state_dict(), path)
    convert_weights(str(path), "lw-refinenet", "lw-refinenet-resnet50", NUM_CLASSES, str(tmp_path / "converted"))

    image = np.random.default_rng(0).integers(0, 256, (67, 93, 3), dtype=np.uint8)
    ours = run_checkpoint(str(tmp_path / "converted"), image, end_points=())["logits"]
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    torch_input = torch.from_numpy(((image / 255.0 - mean) / std).transpose(2, 0, 1)[None].astype(np.float32))
    with torch.no_grad():
        reference = model(torch_input)[0].numpy().transpose(1, 2, 0)
    assert ours.shape == reference.shape == (17, 24, NUM_CLASSES)
    difference = np.abs(ours - reference).max()
    value_range = reference.max() - reference.min()
    assert difference < 1e-4 * value_range, f"max abs difference {difference:.3g}, range {value_range:.3g}"
