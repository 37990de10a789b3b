"""The loss flags of train.py and train_msc.py: --loss, --class-weights, --ohem-keep, --ohem-min-kept, --focal-gamma."""

from __future__ import annotations

import argparse

from refinenet_tf import defaults
from refinenet_tf.train.class_weights import METHODS, NO_WEIGHTS
from refinenet_tf.train.losses import LOSSES


def add_loss_flags(parser: argparse.ArgumentParser) -> None:
    """The flag group choosing the loss and the class weights (for imbalanced data)."""
    group = parser.add_argument_group("loss (imbalanced data)")
    group.add_argument("--loss", choices=LOSSES, default=defaults.LOSS,
                       help="loss: cross-entropy, ohem (only the hardest pixels of each batch), focal, or dice "
                            "(the soft Dice loss, every class weighing alike; for small foregrounds and binary tasks)")
    group.add_argument("--class-weights", default=NO_WEIGHTS, metavar="|".join([NO_WEIGHTS, *METHODS, "FILE"]),
                       help="weight of each class in the loss: counted from the training masks (inverse-frequency, "
                            "median-frequency) or read from a CSV (name,weight rows) or JSON ({\"name\": weight}) "
                            f"file naming every class (default {NO_WEIGHTS})")
    group.add_argument("--ohem-keep", type=float, default=defaults.OHEM_KEEP,
                       help="--loss ohem: fraction of a batch's labelled pixels kept, in (0, 1] (default %(default)s)")
    group.add_argument("--ohem-min-kept", type=int, default=defaults.OHEM_MIN_KEPT,
                       help="--loss ohem: keep at least this many pixels of the stride-4 logits per batch "
                            "(default %(default)s)")
    group.add_argument("--focal-gamma", type=float, default=defaults.FOCAL_GAMMA,
                       help="--loss focal: focusing exponent, >= 0; 0 is cross-entropy (default %(default)s)")


def loss_settings(args: argparse.Namespace) -> dict:
    """The TrainConfig fields set by :func:`add_loss_flags`."""
    return {"loss": args.loss, "class_weights": args.class_weights, "ohem_keep": args.ohem_keep,
            "ohem_min_kept": args.ohem_min_kept, "focal_gamma": args.focal_gamma}
