"""How far above chance a score must be before a test may call it learned.

A one-shot score over n independent trials of chance p is Binomial(n, p) / n. A test that
asserts "beats chance" compares the score with the (1 - alpha) quantile of that law, so a
model at chance fails it with probability at most alpha, on any machine: a fixed figure
fitted to one run (e.g. "> 0.15") says nothing about the trial count and breaks when a
machine trains the same preset to a slightly different model.
"""

from __future__ import annotations

from scipy.stats import binom


def chance_ceiling(trials: int, p: float, alpha: float = 1e-4) -> float:
    """The score (a fraction) that chance reaches with probability at most `alpha`."""
    return float(binom.ppf(1.0 - alpha, trials, p)) / trials
