"""Weight importers: DeepLab, Keras h5 and PyTorch state dicts mapped onto our variable names."""
