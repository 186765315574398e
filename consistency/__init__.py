"""The losses tying segmenter and video models together, the training stages and the training loop."""
