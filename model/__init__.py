"""Offline trainer: Koch et al. (2015) siamese nets on Omniglot, and the face embedder."""
