"""Multi-scale training with gradient accumulation (DeepLab's train_msc.py); see ``--help``."""

if __name__ == "__main__":  # spawned workers (the CRF pool) import this file again and must not rerun it
    import sys

    from refinenet_tf.cli import launch

    sys.exit(launch("train-msc"))
