"""Every default of the project, defined once: DeepLab-ResNet-TF's training and evaluation settings, the
default architecture, class count and ignore label, and the image files the commands read."""

from __future__ import annotations

# DeepLab-ResNet-TF (train.py, evaluate.py, inference.py)
BATCH_SIZE = 10
DATA_DIRECTORY = "./dataset/VOC2012"
DATA_LIST_PATH = "./dataset/train.txt"
VAL_LIST_PATH = "./dataset/val.txt"
IGNORE_LABEL = 255
INPUT_SIZE = (321, 321)  # crop (height, width)
LEARNING_RATE = 2.5e-4
MOMENTUM = 0.9
NUM_CLASSES = 21
NUM_STEPS = 20001
POWER = 0.9
RANDOM_SEED = 1234
SAVE_NUM_IMAGES = 2
SAVE_PRED_EVERY = 1000
SNAPSHOT_DIR = "./snapshots/"
KEEP_SNAPSHOTS = 10
WEIGHT_DECAY = 5e-4
MIN_SCALE, MAX_SCALE = 0.5, 1.5  # random scaling of training images
GRAD_UPDATE_EVERY_MSC = 10  # train_msc.py: batches accumulated into one update
MULTISCALE_SCALES = (1.0, 0.75, 0.5)  # train_msc.py and evaluate_msc.py
SAVE_DIRECTORY = "./output/"  # inference.py

# This project's choices
DEFAULT_ARCH = "refinenet-resnet101"
DECODER_LR_MULT = 10.0  # new layers learn this much faster than the backbone (DeepLab's last-layer factor)
LOG_EVERY = 10  # training progress line every this many steps
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
