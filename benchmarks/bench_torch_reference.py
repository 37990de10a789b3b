"""Same-machine anchor: Light-Weight RefineNet ResNet-50 in PyTorch (eval mode, the official layout:
torchvision-style ResNet with unfused batch norm, 1x1 decoder, chained residual pooling) against this
project's frozen TensorFlow graph, timed interleaved in one process with the same thread count.

PyTorch times the forward pass only (logits at stride 4), as the issue's reference did; TensorFlow
times ``labels`` (forward, bilinear resize to the image size and argmax), so it does strictly more.
Needs ``torch`` (the ``[torch]`` extra).
"""

from __future__ import annotations

import numpy as np
from common import base_parser, machine_info, markdown_table, stats_ms, time_interleaved, write_section

NUM_CLASSES = 21
ARCH = "lw-refinenet-resnet50"
SETTLE_SECONDS = 0.5  # TensorFlow's and PyTorch's pools spin after work; let them settle between calls


def parse_args(argv=None):
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="468x625,512x512", help="comma-separated HEIGHTxWIDTH")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.repeats, args.warmup = "33x45", 1, 1
    args.sizes = [tuple(int(v) for v in size.split("x")) for size in args.sizes.split(",")]
    return args


def torch_model():
    """LW-RefineNet ResNet-50 as a torch module (random weights; timing does not depend on them)."""
    import torch
    from torch import nn
    from torch.nn import functional

    def conv(cin, cout, kernel=1, stride=1, bias=False):
        return nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=bias)

    class Bottleneck(nn.Module):
        def __init__(self, cin, width, stride):
            super().__init__()
            self.body = nn.Sequential(conv(cin, width), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
                                      conv(width, width, 3, stride), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
                                      conv(width, 4 * width), nn.BatchNorm2d(4 * width))
            self.shortcut = (nn.Sequential(conv(cin, 4 * width, 1, stride), nn.BatchNorm2d(4 * width))
                             if stride != 1 or cin != 4 * width else nn.Identity())

        def forward(self, x):
            return functional.relu(self.body(x) + self.shortcut(x))

    class ChainedResidualPooling(nn.Module):
        def __init__(self, channels):
            super().__init__()
            self.convs = nn.ModuleList(conv(channels, channels) for _ in range(4))
            self.pool = nn.MaxPool2d(5, 1, 2)

        def forward(self, x):
            top = x
            for layer in self.convs:
                top = layer(self.pool(top))
                x = x + top
            return x

    class LightWeightRefineNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(conv(3, 64, 7, 2), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
                                      nn.MaxPool2d(3, 2, 1))
            stages, cin = [], 64
            for width, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
                layers = []
                for index in range(blocks):
                    layers.append(Bottleneck(cin, width, stride if index == 0 else 1))
                    cin = 4 * width
                stages.append(nn.Sequential(*layers))
            self.stages = nn.ModuleList(stages)
            self.reduce = nn.ModuleList([conv(2048, 512), conv(1024, 256), conv(512, 256), conv(256, 256)])
            self.adapt = nn.ModuleList([nn.Identity(), conv(256, 256), conv(256, 256), conv(256, 256)])
            self.crp = nn.ModuleList([ChainedResidualPooling(512)] + [ChainedResidualPooling(256) for _ in range(3)])
            self.joint = nn.ModuleList([conv(512, 256), conv(256, 256), conv(256, 256)])
            self.classifier = conv(256, NUM_CLASSES, 3, bias=True)

        def forward(self, x):
            features, x = [], self.stem(x)
            for stage in self.stages:
                x = stage(x)
                features.append(x)
            top = None
            for path, feature in enumerate(reversed(features)):
                y = self.adapt[path](self.reduce[path](feature))
                if top is not None:
                    y = y + functional.interpolate(top, size=y.shape[2:], mode="bilinear", align_corners=True)
                y = self.crp[path](functional.relu(y))
                top = self.joint[path](y) if path < 3 else y
            return self.classifier(top)

    torch.manual_seed(0)
    return LightWeightRefineNet().eval()


def main(argv=None) -> None:
    import torch

    from refinenet_tf.description import default_description
    from refinenet_tf.inference_graph import FrozenPredictor, build_inference_graph

    args = parse_args(argv)
    torch.set_num_threads(args.threads or torch.get_num_threads())
    model = torch_model()
    model_last = torch_model().to(memory_format=torch.channels_last)
    predictor = FrozenPredictor(build_inference_graph(default_description(ARCH, NUM_CLASSES)), args.threads,
                                args.inter_op_threads)
    rows = []
    for size in args.sizes:
        image = np.random.default_rng(0).integers(0, 256, (*size, 3), dtype=np.uint8)
        batch = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
        batch_last = batch.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            times = time_interleaved({
                "PyTorch eval, NCHW (as shipped)": lambda batch=batch: model(batch),
                "PyTorch eval, channels_last": lambda batch=batch_last: model_last(batch),
                "TensorFlow frozen graph (this project), incl. resize + argmax":
                    lambda image=image: predictor.predict(image, ("labels",)),
            }, args.repeats, args.warmup, pause=SETTLE_SECONDS)
        tf_median = np.median(times["TensorFlow frozen graph (this project), incl. resize + argmax"])
        for name, seconds in times.items():
            rows.append([f"{size[0]}x{size[1]}", name, stats_ms(seconds), f"{np.median(seconds) / tf_median:.2f}"])
    table = markdown_table(["HxW", "implementation", "ms median (min-max)", "time / TensorFlow's"], rows)
    body = f"{machine_info(args)}\n- PyTorch {torch.__version__}, {torch.get_num_threads()} threads\n\n{table}"
    write_section(args.output, "torch-reference", "Same-machine PyTorch anchor (LW ResNet-50)", body)
    print(body)


if __name__ == "__main__":
    main()
