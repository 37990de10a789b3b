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
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".npy")

# Class-balanced training (train.py --loss, --class-weights)
LOSS = "cross-entropy"
# OHEM: the hardest quarter of a batch's pixels (ranked by their loss) carry the loss, but never fewer than
# OHEM_MIN_KEPT. A quarter drops the bulk of easily learnt pixels (large background regions) while a batch of
# 321x321 crops still keeps ~16 000 pixels of its stride-4 logits for a steady gradient. The floor is the
# 100 000 label pixels of common OHEM implementations (PSPNet, HRNet, mmsegmentation), counted at the stride-4
# logits where this project computes the loss: 100000 / 16.
OHEM_KEEP = 0.25
OHEM_MIN_KEPT = 6250
FOCAL_GAMMA = 2.0  # Lin et al., "Focal Loss for Dense Object Detection" (2017): their best value
CLASS_FREQUENCIES_FILE = "class_frequencies.json"  # beside the snapshots: pixel counts of the training masks
TRAINING_RECORD_FILE = "training.json"  # beside the snapshots: the loss settings and class weights used

# Tiled prediction (--tile, --tile-overlap)
TILE_OVERLAP = 0.25  # neighbouring windows share a quarter of the tile, as mmsegmentation's sliding window
# --tile auto predicts the whole image while its estimated memory (the prediction graph's peak of live
# activations, with the measured overhead of models/memory.py) stays within this share of the RAM.
AUTO_TILE_MEMORY_FRACTION = 0.25

# The HTML evaluation report (--report)
REPORT_IMAGES = 6  # the report shows this many worst and this many best images

# int8 quantization (python -m refinenet_tf quantize, --precision int8)
CALIBRATION_IMAGES = 100  # images whose activation ranges set the int8 scales
INT8_TOLERANCE = 1.0  # mean IoU points int8 may lose against float32 before layers go back to float
SENSITIVITY_IMAGES = 4  # calibration images the per-layer sensitivity ranking runs on
