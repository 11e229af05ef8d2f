"""Koch et al. (2015) on Omniglot: data, distortions, one-shot tasks, nets, training, evaluation."""
