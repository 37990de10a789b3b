"""Graph builders: layers, backbones, RefineNet decoders, and the architecture registry."""
