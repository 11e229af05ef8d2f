"""Data preparation, kept apart from training: Omniglot zips and the CelebA face subset."""
