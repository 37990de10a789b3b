"""Convert masks to index PNGs or prepare a data set's list files; see ``python convert_masks.py --help``."""

if __name__ == "__main__":  # spawned workers (the CRF pool) import this file again and must not rerun it
    import sys

    from refinenet_tf.cli import launch

    sys.exit(launch("convert-masks"))
