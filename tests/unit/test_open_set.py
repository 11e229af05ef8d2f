"""The open-set threshold: FPIR(t, N) = 1 - (1 - F(t))^N and its inverse, the shipped
impostor tail (quantiles, interpolation, normal-tail extrapolation), and the cap at the
1:1 threshold."""

import math
from statistics import NormalDist

import numpy as np
import pytest

from app.domain.open_set import (
    ImpostorTail, fpir_at, identify_threshold, per_pair_rate,
)

MU, SIGMA = 0.9, 0.12  # a normal impostor-distance distribution, about like faces


def normal_tail(n: int = 400_000, seed: int = 0) -> ImpostorTail:
    return ImpostorTail.from_distances(np.random.default_rng(seed).normal(MU, SIGMA, n))


def true_quantile(rate: float) -> float:
    return NormalDist(MU, SIGMA).inv_cdf(rate)


@pytest.mark.parametrize("n", [1, 10, 1000, 10**6])
def test_per_pair_rate_inverts_fpir(n):
    rate = per_pair_rate(0.01, n)
    assert fpir_at(rate, n) == pytest.approx(0.01, rel=1e-9)
    assert rate <= 0.01 / n * 1.0051  # about FPIR / N, never much more


def test_per_pair_rate_is_the_target_for_one_person_and_exact_for_tiny_rates():
    assert per_pair_rate(0.01, 1) == pytest.approx(0.01)
    assert per_pair_rate(0.001, 10**6) == pytest.approx(-math.log(0.999) / 10**6, rel=1e-6)
    assert per_pair_rate(0.01, 0) == per_pair_rate(0.01, 1)  # an empty gallery counts as one
    with pytest.raises(ValueError):
        per_pair_rate(0.0, 10)


def test_tail_quantiles_match_the_distribution_where_measured():
    tail = normal_tail()
    assert tail.pairs == 400_000
    assert tail.min_measured_rate >= 20 / 400_000
    for rate, d in zip(tail.rates, tail.distances):
        # a quantile at rate r from n pairs has a standard error of about sqrt(r/n) / pdf
        se = math.sqrt(rate / tail.pairs) / NormalDist(MU, SIGMA).pdf(true_quantile(rate))
        assert abs(d - true_quantile(rate)) < 4 * se + 1e-6, rate


def test_tail_extrapolates_a_normal_tail_beyond_the_sample():
    tail = normal_tail()
    for rate in (1e-6, 1e-8, 1e-10):
        assert rate < tail.min_measured_rate
        assert tail.quantile(rate) == pytest.approx(true_quantile(rate), abs=0.02), rate


def test_quantile_and_cdf_are_inverse_and_monotone():
    tail = normal_tail()
    rates = np.logspace(-12, -0.5, 60)
    qs = [tail.quantile(r) for r in rates]
    assert all(b >= a for a, b in zip(qs, qs[1:]))
    for r, q in zip(rates, qs):
        assert tail.cdf(q) == pytest.approx(r, rel=0.03)


def test_tail_round_trips_through_metadata_json():
    tail = normal_tail()
    again = ImpostorTail.from_dict(tail.to_dict())
    assert again.rates == tail.rates and again.distances == tail.distances
    assert again.slope == pytest.approx(tail.slope, rel=1e-5)
    assert again.quantile(1e-9) == pytest.approx(tail.quantile(1e-9), abs=1e-5)


@pytest.mark.parametrize("bad", [
    {"rates": [0.1], "distances": [0.5]},
    {"rates": [0.01, 0.001], "distances": [0.5, 0.6]},
    {"rates": [0.001, 0.01], "distances": [0.6, 0.5]},
    {"rates": [0.001, 0.01], "distances": [0.5, 0.6, 0.7]},
    {"rates": [0.0, 0.01], "distances": [0.5, 0.6]},
])
def test_malformed_tail_is_rejected(bad):
    with pytest.raises(ValueError):
        ImpostorTail.from_dict(bad)


def test_too_few_pairs_make_no_tail():
    with pytest.raises(ValueError, match="too few"):
        ImpostorTail.from_distances(np.linspace(0, 1, 500))


def test_threshold_tightens_as_the_gallery_grows_and_never_exceeds_the_1to1_threshold():
    tail = normal_tail()
    verify_t = true_quantile(1e-3)
    sizes = [1, 10, 100, 1000, 10**4, 10**5, 10**6]
    got = [identify_threshold(tail, 0.01, n, verify_t) for n in sizes]
    ts = [g.threshold for g in got]
    assert all(b < a for a, b in zip(ts[1:], ts[2:]))
    assert all(t <= verify_t for t in ts)
    assert got[0].source == "verify" and got[0].threshold == pytest.approx(verify_t)  # N=1: 1:1 is stricter
    assert got[-1].source == "fpir" and got[-1].extrapolated
    assert got[2].gallery_size == 100 and got[2].target_fpir == 0.01
    assert got[2].pair_rate == pytest.approx(per_pair_rate(0.01, 100))
    assert not got[2].extrapolated  # 1e-4: inside the 400k-pair sample


def test_without_a_tail_identify_uses_the_1to1_threshold():
    got = identify_threshold(None, 0.01, 5000, 0.52)
    assert (got.threshold, got.source, got.target_fpir, got.gallery_size) == (0.52, "verify", None, 5000)


def test_measured_fpir_of_simulated_galleries_stays_at_the_target():
    """Independent normal impostor distances: the fraction of strangers whose nearest of N
    gallery distances falls within the threshold is the target FPIR (binomial error)."""
    rng = np.random.default_rng(1)
    tail = normal_tail(seed=2)
    for n, probes in ((100, 20_000), (2000, 4000)):
        t = identify_threshold(tail, 0.05, n, verify_threshold=2.0).threshold
        nearest = np.array([rng.normal(MU, SIGMA, n).min() for _ in range(probes)])
        measured = float(np.mean(nearest <= t))
        assert measured <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / probes), (n, measured)
        assert measured >= 0.05 - 4 * math.sqrt(0.05 * 0.95 / probes) - 0.01, (n, measured)


def test_identity_bootstrap_bound_is_stricter_and_covers_another_group_of_people():
    """Pairs of people, not photos, make the tail: a bound from one group of 40 identities
    accepts at most about its rate of another group's pairs."""
    rng = np.random.default_rng(3)

    def group(n_ids=40, per_id=12):
        centres = rng.standard_normal((n_ids, 32))
        x = np.repeat(centres, per_id, 0) + 1.2 * rng.standard_normal((n_ids * per_id, 32))
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        ids = np.repeat(np.arange(n_ids), per_id)
        i, j = np.triu_indices(len(x), 1)
        imp = ids[i] != ids[j]
        return 1 - np.sum(x[i[imp]] * x[j[imp]], 1), ids[i[imp]], ids[j[imp]]

    d, a, b = group()
    plain = ImpostorTail.from_distances(d)
    bound = ImpostorTail.from_distances(d, a, b, confidence=0.99, n_boot=100)
    assert all(x <= y for x, y in zip(bound.distances, plain.distances))
    assert bound.quantile(1e-3) < plain.quantile(1e-3)
    others = [group()[0] for _ in range(4)]
    share = np.mean([np.mean(o <= bound.quantile(1e-3)) for o in others])
    assert share <= 1.2e-3
