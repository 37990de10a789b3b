"""Data: list files, image and mask decoding, augmentation, mask conversion, data set layouts."""
