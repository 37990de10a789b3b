"""``train.py``: DeepLab-ResNet-TF's training script for RefineNet models (flags and defaults kept)."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

from refinenet_tf import defaults
from refinenet_tf.cli import flags
from refinenet_tf.cli.loss_flags import add_loss_flags, loss_settings
from refinenet_tf.data.class_table import read_class_table
from refinenet_tf.models.layers import DEFAULT_BATCH_NORM_DECAY
from refinenet_tf.models.model import FUSIONS
from refinenet_tf.train.distributed import ALL_DEVICES, DEVICES_HELP
from refinenet_tf.train.model_choice import description_to_train
from refinenet_tf.train.optimizer import OPTIMIZERS
from refinenet_tf.train.precision import PRECISIONS
from refinenet_tf.train.schedule import SCHEDULES
from refinenet_tf.train.trainer import TrainConfig, Trainer

_LOG = logging.getLogger(__name__)


def build_parser(multiscale: bool = False) -> argparse.ArgumentParser:
    """The flags of train.py, or of train_msc.py when ``multiscale``."""
    name = "train_msc.py" if multiscale else "train.py"
    what = "multi-scale (1.0, 0.75, 0.5) training with gradient accumulation" if multiscale else "training"
    examples = ([f"{name} --data-dir VOCdevkit/VOC2012 --data-list dataset/voc/train.txt --grad-update-every 10 "
                 "--restore-from deeplab_resnet_init.ckpt --num-classes 21"] if multiscale else
                [f"{name} --data-dir VOCdevkit/VOC2012 --data-list dataset/voc/train_aug.txt --num-classes 21 "
                 "--restore-from deeplab_resnet_init.ckpt --snapshot-dir snapshots/",
                 f"{name} --arch lw-refinenet-mobilenetv2 --is-training --optimizer adam --decoder-lr-mult 1 "
                 "--learning-rate 1e-3 --data-dir ./ --data-list dataset/shots/train.txt --num-classes 3"])
    parser = flags.new_parser(name, f"RefineNet {what}, DeepLab-ResNet-TF style.", examples)
    flags.add_model_flags(parser, restore_help="checkpoint file or directory to start from; a --snapshot-dir "
                                               "holding a run started from it (or from nothing named) resumes that "
                                               "run, another start moves that run into run-<time>/ first")
    parser.add_argument("--img-std", type=flags.parse_floats, default=None,
                        help="images of other bands than 8-bit RGB: each band's standard deviation, with --img-mean "
                             "(default: both measured on the training list)")
    flags.add_data_flags(parser)
    group = parser.add_argument_group("training")
    group.add_argument("--batch-size", type=int, default=1 if multiscale else defaults.BATCH_SIZE,
                       help="images per batch")
    group.add_argument("--input-size", type=flags.parse_size, default=defaults.INPUT_SIZE,
                       help="crop size HEIGHT,WIDTH (default 321,321)")
    group.add_argument("--is-training", action="store_true",
                       help="train batch norm (statistics and scale/offset); frozen otherwise")
    group.add_argument("--bn-decay", type=float, default=DEFAULT_BATCH_NORM_DECAY,
                       help="moving-average decay of batch-norm statistics with --is-training (short runs: 0.9-0.99)")
    group.add_argument("--learning-rate", type=float, default=defaults.LEARNING_RATE, help="base learning rate")
    group.add_argument("--momentum", type=float, default=defaults.MOMENTUM, help="SGD momentum")
    group.add_argument("--optimizer", choices=OPTIMIZERS, default="momentum",
                       help="momentum SGD (DeepLab's, for fine-tuning) or adam (steadier from random weights)")
    group.add_argument("--not-restore-last", action="store_true",
                       help="do not restore the classifier (start a model with another class count)")
    group.add_argument("--num-steps", type=int, default=defaults.NUM_STEPS, help="number of updates")
    group.add_argument("--power", type=float, default=defaults.POWER, help="poly decay power")
    group.add_argument("--schedule", choices=SCHEDULES, default="poly",
                       help="poly decay, or Light-Weight RefineNet's 3 stages (rates x1, x0.5, x0.2, momentum reset)")
    group.add_argument("--decoder-lr-mult", type=float, default=defaults.DECODER_LR_MULT,
                       help="learning-rate factor of the new (decoder) layers; biases get twice their layer's")
    group.add_argument("--weight-decay", type=float, default=defaults.WEIGHT_DECAY,
                       help="L2 regularisation of convolution weights")
    group.add_argument("--random-mirror", action="store_true", help="randomly mirror the inputs")
    group.add_argument("--random-scale", action="store_true", help="randomly scale the inputs")
    group.add_argument("--min-scale", type=float, default=defaults.MIN_SCALE, help="smallest random scale")
    group.add_argument("--max-scale", type=float, default=defaults.MAX_SCALE, help="largest random scale")
    group.add_argument("--random-seed", type=int, default=defaults.RANDOM_SEED, help="seed of every random choice")
    group.add_argument("--on-bad-sample", choices=["fail", "skip"], default="fail",
                       help="stop at an unusable image or mask, or log and skip it")
    group.add_argument("--threads", type=int, default=None, help="reader and TensorFlow threads (default: auto)")
    group.add_argument("--class-dict", default=None,
                       help="class_dict.csv with the class names and colours to record with the model")
    group.add_argument("--devices", default=ALL_DEVICES, help=f"data-parallel training devices: {DEVICES_HELP} "
                       "(--batch-size is the global batch; see docs/DISTRIBUTED.md)")
    group.add_argument("--precision", choices=PRECISIONS, default="float32",
                       help="compute type; variables stay float32, float16 uses loss scaling")
    group.add_argument("--grad-update-every", type=int,
                       default=defaults.GRAD_UPDATE_EVERY_MSC if multiscale else 1,
                       help="batches whose gradients are accumulated into one update (default %(default)s)")
    if multiscale:
        group.add_argument("--fusion", choices=FUSIONS, default="max", help="how the scales' logits are fused")
        group.add_argument("--scales", type=flags.parse_floats, default=defaults.MULTISCALE_SCALES,
                           help="input scales, the first one sets the fused size")
    add_loss_flags(parser)
    output = parser.add_argument_group("output")
    output.add_argument("--snapshot-dir", default=defaults.SNAPSHOT_DIR, help="where snapshots and summaries go")
    output.add_argument("--save-pred-every", type=int, default=defaults.SAVE_PRED_EVERY,
                        help="save a snapshot (and summary images) every this many steps")
    output.add_argument("--save-num-images", type=int, default=defaults.SAVE_NUM_IMAGES,
                        help="images shown in the TensorBoard summary")
    output.add_argument("--log-every", type=int, default=defaults.LOG_EVERY,
                        help="print a progress line every this many steps")
    flags.add_validation_flags(parser)
    return parser


def config_from_args(args: argparse.Namespace, multiscale: bool = False) -> TrainConfig:
    """The trainer configuration for parsed train.py / train_msc.py flags."""
    description = description_to_train(
        args.snapshot_dir, args.restore_from, args.arch, args.num_classes,
        read_class_table(args.class_dict) if args.class_dict else None, args.stride_on, args.padding,
        args.img_mean, args.ignore_label, args.not_restore_last, args.img_std)
    return TrainConfig(
        description=description,
        data_dir=args.data_dir, data_list=args.data_list, snapshot_dir=args.snapshot_dir,
        batch_size=args.batch_size, input_size=args.input_size, learning_rate=args.learning_rate,
        momentum=args.momentum, optimizer=args.optimizer, weight_decay=args.weight_decay, num_steps=args.num_steps,
        power=args.power, schedule=args.schedule, decoder_lr_mult=args.decoder_lr_mult,
        train_batch_norm=args.is_training, batch_norm_decay=args.bn_decay,
        random_mirror=args.random_mirror, random_scale=args.random_scale, min_scale=args.min_scale,
        max_scale=args.max_scale, random_seed=args.random_seed, restore_from=args.restore_from,
        not_restore_last=args.not_restore_last, save_num_images=args.save_num_images,
        save_pred_every=args.save_pred_every, log_every=args.log_every, on_bad_sample=args.on_bad_sample,
        threads=args.threads, grad_update_every=args.grad_update_every,
        scales=args.scales if multiscale else (1.0,), fusion=args.fusion if multiscale else "max",
        devices=args.devices, precision=args.precision, **loss_settings(args),
        **flags.validation_settings(args),
    )


def run_training(argv: Sequence[str] | None, multiscale: bool) -> None:
    """Parse flags, train, and turn a signal-requested stop into KeyboardInterrupt (exit status 130)."""
    args = build_parser(multiscale).parse_args(argv)
    config = config_from_args(args, multiscale)
    description = config.description
    _LOG.info("training %s, %d classes, crop %dx%d, batch %d%s", description.arch, description.num_classes,
              config.input_size[0], config.input_size[1], config.batch_size,
              f" x {config.grad_update_every} accumulated" if config.grad_update_every > 1 else "")
    result = Trainer(config).run()
    if result.stopped:
        raise KeyboardInterrupt
    _LOG.info("done: step %d, last snapshot %s", result.step, result.snapshot)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``train.py``."""
    run_training(argv, multiscale=False)
