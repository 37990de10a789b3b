"""Runs one Trainer in its own process (for logical CPU devices or TF_CONFIG) and dumps its weights; ``train``
runs it in the caller's process, where neither is needed.

Usage: python -m tests.distribute.worker SETTINGS_JSON; SETTINGS holds ``logical_cpus``, ``dump`` (an
.npz written at the last step with every global variable as this process sees it) and TrainConfig fields.
"""

import json
import sys

import numpy as np
import tensorflow as tf

from refinenet_tf.description import default_description
from refinenet_tf.train.trainer import TrainConfig, Trainer
from tests.support.toy_data import NUM_CLASSES

v1 = tf.compat.v1


def train(settings: dict) -> dict:
    """One run of the worker's Trainer in this process: its step, loss and last snapshot (no ``logical_cpus``)."""
    settings = dict(settings)
    dump = settings.pop("dump", None)
    config = TrainConfig(description=default_description("lw-refinenet-mobilenetv2", NUM_CLASSES),
                         input_size=(32, 32), save_num_images=0, dropout=False, **settings)
    trainer = Trainer(config)
    variables = trainer.graph.get_collection(v1.GraphKeys.GLOBAL_VARIABLES)

    def dump_at_end(step: int, loss: float) -> None:
        if dump and step == config.num_steps:
            values = v1.get_default_session().run(variables)
            np.savez(dump, **{variable.name: value for variable, value in zip(variables, values, strict=True)})

    result = trainer.run(dump_at_end)
    return {"step": result.step, "loss": result.loss, "snapshot": result.snapshot}


def main(settings: dict) -> None:
    cpus = settings.pop("logical_cpus", 1)
    if cpus > 1:  # before TensorFlow initialises its devices
        tf.config.set_logical_device_configuration(tf.config.list_physical_devices("CPU")[0],
                                                   [tf.config.LogicalDeviceConfiguration()] * cpus)
    print(json.dumps(train(settings)))


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
