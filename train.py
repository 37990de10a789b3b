"""Train a RefineNet model, DeepLab-ResNet-TF style; see ``python train.py --help``."""

if __name__ == "__main__":  # spawned workers (the CRF pool) import this file again and must not rerun it
    import sys

    from refinenet_tf.cli import launch

    sys.exit(launch("train"))
