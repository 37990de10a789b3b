"""Same-machine anchor: Light-Weight RefineNet ResNet-50 in PyTorch (eval mode, the official layout:
torchvision-style ResNet with unfused batch norm, 1x1 decoder, chained residual pooling) against this
project's ``RefineNet(model=...).deploy(image=...)`` in float32 and with ``precision='auto'``, timed
interleaved in one process with the same thread count.

Every implementation does the same work: logits, bilinear resize to the image size, argmax. Memory: each
implementation in a process of its own, the working set being the peak resident memory above what the
process holds once its framework is imported and has run. Needs ``torch``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
from common import (
    base_parser,
    machine_info,
    markdown_table,
    peak_rss_mb,
    resident_mb,
    run_process,
    stats_ms,
    time_interleaved,
    write_section,
)

NUM_CLASSES = 21
ARCH = "lw-refinenet-resnet50"
SETTLE_SECONDS = 0.5  # TensorFlow's and PyTorch's pools spin after work; let them settle between calls
IMPLEMENTATIONS = ("torch-nchw", "torch-channels-last", "ours-float32", "ours-auto")
NAMES = {"torch-nchw": "PyTorch eval, NCHW (as shipped)", "torch-channels-last": "PyTorch eval, channels_last",
         "ours-float32": "this project: RefineNet(model=...).deploy(image=...), float32",
         "ours-auto": "this project: deploy with precision='auto'"}


def parse_args(argv=None):
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="468x625", help="comma-separated HEIGHTxWIDTH")
    parser.add_argument("--memory-of", choices=IMPLEMENTATIONS, help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
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


def runner(name: str, directory: str, threads: int):
    """A function segmenting one uint8 image with implementation ``name``: logits, then the bilinear resize to
    the image size and the argmax, in every implementation."""
    if name.startswith("torch"):
        import torch
        from torch.nn import functional

        torch.set_num_threads(threads or torch.get_num_threads())
        model = torch_model()
        last = name == "torch-channels-last"
        if last:
            model = model.to(memory_format=torch.channels_last)

        def segment(image):
            batch = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
            if last:
                batch = batch.contiguous(memory_format=torch.channels_last)
            with torch.inference_mode():
                logits = functional.interpolate(model(batch), size=image.shape[:2], mode="bilinear",
                                                align_corners=False)
                return logits.argmax(1)[0].numpy()

        return segment
    from refinenet_tf import RefineNet

    model = RefineNet(model=directory, threads=threads, precision=name.removeprefix("ours-"))
    return lambda image: model.deploy(image=image)


def saved_model_directory(directory: str) -> str:
    """Random LW ResNet-50 weights with model.json, as deploy() loads them."""
    from bench_inference import random_checkpoint

    from refinenet_tf.description import default_description

    description = default_description(ARCH, NUM_CLASSES)
    random_checkpoint(description, directory)
    (Path(directory) / "checkpoint").write_text('model_checkpoint_path: "random.ckpt"\n')
    description.save(directory)
    return directory


def memory_worker(args) -> dict:
    """Working set of one implementation: peak resident memory above its framework's own after warm-up."""
    if args.memory_of.startswith("torch"):
        import torch

        torch.ones(1) + 1
    else:
        import tensorflow as tf

        import refinenet_tf.api  # noqa: F401  (the project's modules count as framework, as torch's do)

        with tf.compat.v1.Session(graph=tf.Graph()) as session:
            session.run(tf.constant(1.0))
    baseline = resident_mb()
    segment = runner(args.memory_of, args.model_dir, args.threads)
    image = np.random.default_rng(0).integers(0, 256, (*args.sizes[0], 3), dtype=np.uint8)
    for _ in range(2):
        segment(image)
    return {"implementation": args.memory_of, "baseline_mb": baseline, "working_set_mb": peak_rss_mb() - baseline}


def main(argv=None) -> None:
    import torch

    from refinenet_tf.hardware import choose_precision

    args = parse_args(argv)
    if args.memory_of:
        print(json.dumps(memory_worker(args)))
        return
    with tempfile.TemporaryDirectory() as directory:
        model_dir = saved_model_directory(directory)
        segment = {name: runner(name, model_dir, args.threads) for name in IMPLEMENTATIONS}
        rows = []
        for size in args.sizes:
            image = np.random.default_rng(0).integers(0, 256, (*size, 3), dtype=np.uint8)
            times = time_interleaved({name: (lambda image=image, f=function: f(image))
                                      for name, function in segment.items()},
                                     args.repeats, args.warmup, pause=SETTLE_SECONDS)
            ours = np.median(times["ours-float32"])
            for name, seconds in times.items():
                rows.append([f"{size[0]}x{size[1]}", NAMES[name], stats_ms(seconds),
                             f"{np.median(seconds) / ours:.2f}"])
        memory = [run_process([*args.argv, "--memory-of", name, "--model-dir", model_dir]) for name in IMPLEMENTATIONS]
    table = markdown_table(["HxW", "implementation", "ms median (min-max)", "time / ours float32"], rows)
    memory_table = markdown_table(["implementation", "working set MiB (own process, above the framework's)",
                                   "framework baseline MiB"],
                                  [[NAMES[entry["implementation"]], f"{entry['working_set_mb']:.0f}",
                                    f"{entry['baseline_mb']:.0f}"] for entry in memory])
    body = (f"{machine_info(args)}\n- PyTorch {torch.__version__}, {torch.get_num_threads()} threads; 'auto' chose "
            f"{choose_precision('auto')}\n\n{table}\n\nMemory at {args.sizes[0][0]}x{args.sizes[0][1]}:\n\n"
            f"{memory_table}")
    write_section(args.output, "torch-reference", "Same-machine PyTorch anchor (LW ResNet-50)", body)
    print(body)


if __name__ == "__main__":
    main()
