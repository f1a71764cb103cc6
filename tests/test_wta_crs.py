"""WTA-CRS: probabilities, the adaptive deterministic size, the estimator's value and VJP, its
unbiasedness (seeded statistical test) and its variance against plain column-row sampling."""

import numpy as np

import refimpl
from refimpl.other import wta_crs_deterministic_size, wta_crs_matmul, wta_crs_probabilities


def _heavy_tailed_problem(seed, M=3, n=24, N=2):  # noqa: N803
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((M, n))
    z = rng.standard_normal((n, N)) * rng.pareto(1.2, size=(n, 1))  # a few heavy rows
    products = np.linalg.norm(x, axis=0) * np.linalg.norm(z, axis=1)
    return x, z, products / products.sum()  # Σ p = 1 exactly: the estimator is unbiased


def _draw(rng, p, count, size):
    """``size`` indices drawn with replacement from q_i ∝ p_i over i outside the |C| largest p."""
    kept = np.argsort(-p, kind="stable")[:count]
    rest = np.setdiff1d(np.arange(p.shape[0]), kept)
    return rng.choice(rest, size=size, replace=True, p=p[rest] / p[rest].sum())


def _sampling_moments(x, z, p, count, s, **flags):
    """The estimator's exact mean and variance per entry over the draws, from the op itself.

    Given C, Ŷ = det + (1/s) Σ_j t(i_j) with i.i.d. draws i_j ~ q (q_i ∝ p_i off C): one call
    per possible index i, with that index drawn s times, gives det + t(i).
    """
    kept = np.argsort(-p, kind="stable")[:count]
    rest = np.setdiff1d(np.arange(p.shape[0]), kept)
    q = p[rest] / p[rest].sum()
    det = wta_crs_matmul(x, z, p, np.zeros(0, dtype=np.int64), num_deterministic=count, **flags)
    terms = np.stack(
        [wta_crs_matmul(x, z, p, np.full(s, i), num_deterministic=count, **flags) - det for i in rest]
    )
    mean_term = np.tensordot(q, terms, axes=1)
    variance_term = np.tensordot(q, (terms - mean_term) ** 2, axes=1)
    return det + mean_term, variance_term / s


# -- probabilities and size ------------------------------------------------------------------------
def test_wta_crs_probabilities_known_values():
    x = np.array([[3.0, 0.0, 1.0], [4.0, 1.0, 0.0]])  # column norms 5, 1, 1
    z = np.array([[1.0, 0.0], [0.0, 5.0], [0.0, 0.0]])  # row norms 1, 5, 0
    p = wta_crs_probabilities(x, z)
    eps = 1e-8
    np.testing.assert_allclose(
        p, [(5 + eps) / (10 + eps), (5 + eps) / (10 + eps), eps / (10 + eps)], rtol=1e-15
    )
    assert p[2] > 0 and p.sum() > 1  # ε keeps p > 0 and makes Σ p = (S + nε)/(S + ε)
    # the official first-iteration rule (b alone) is reproduced with x = ones
    p_first = wta_crs_probabilities(np.ones((1, 3)), z)
    np.testing.assert_allclose(p_first, [(1 + eps) / (6 + eps), (5 + eps) / (6 + eps), eps / (6 + eps)])


def _size_by_hand(p, ratio, minimal_k):
    n = len(p)
    k = min(max(int(np.floor(n * ratio)), minimal_k), n)
    if k == n:
        return k, k
    top = sorted(p, reverse=True)
    scores = [(1 - sum(top[:c])) / (k - c) for c in range(1, k)]
    if not scores:
        return k, 0
    best = min(range(len(scores)), key=lambda i: (scores[i], i))
    return k, (best + 1 if scores[best] <= 1 / k else 0)


def test_wta_crs_deterministic_size_known_values_and_by_hand():
    k, c = wta_crs_deterministic_size(np.array([0.5, 0.3, 0.1, 0.05, 0.05]), ratio=0.6, minimal_k=1)
    assert (int(k), int(c)) == (3, 2)
    k, c = wta_crs_deterministic_size(np.full(20, 0.05), ratio=0.25, minimal_k=1)
    assert (int(k), int(c)) == (5, 0)  # uniform p: no term is worth keeping
    k, c = wta_crs_deterministic_size(np.full(30, 1 / 30), ratio=0.1)
    assert int(k) == 10  # ⌊3⌋ raised to the official minimal_k = 10
    rng = np.random.default_rng(4)
    for _ in range(50):
        p = rng.pareto(1.0, size=int(rng.integers(2, 40))) + 1e-3
        p /= p.sum()
        ratio, minimal_k = float(rng.uniform(0.05, 1.0)), int(rng.integers(1, 6))
        k, c = wta_crs_deterministic_size(p, ratio=ratio, minimal_k=minimal_k)
        assert (int(k), int(c)) == _size_by_hand(p, ratio, minimal_k)


# -- the estimator ---------------------------------------------------------------------------------
def test_wta_crs_matmul_known_value_and_exact_when_everything_is_kept():
    x, z = np.array([[1.0, 2.0, 3.0]]), np.ones((3, 1))
    p = np.array([0.5, 0.25, 0.25])
    np.testing.assert_allclose(wta_crs_matmul(x, z, p, np.array([2]), num_deterministic=1), [[7.0]])
    np.testing.assert_allclose(
        wta_crs_matmul(x, z, p, np.array([2, 1]), num_deterministic=1), [[1.0 + 3.0 + 2.0]]
    )
    x, z, p = _heavy_tailed_problem(0)
    exact = wta_crs_matmul(x, z, p, np.zeros(0, dtype=np.int64), num_deterministic=24)
    np.testing.assert_allclose(exact, x @ z, rtol=1e-13)


def test_wta_crs_matmul_vjp_is_the_same_sampled_sum():
    x, z, p = _heavy_tailed_problem(1, M=4, n=10, N=3)
    count = 3
    kept = np.argsort(-p, kind="stable")[:count]
    outside = np.setdiff1d(np.arange(10), kept)
    sampled = np.array([outside[4], outside[1], outside[4]])
    _, pullback = refimpl.vjp(wta_crs_matmul, x, z, p, sampled, num_deterministic=count)
    g_y = np.random.default_rng(2).standard_normal((4, 3))
    g_x, g_z = pullback(g_y)
    alpha = np.zeros(10)
    alpha[kept] = 1.0
    for i in sampled:
        alpha[i] += (1 - p[kept].sum()) / (3 * p[i])
    np.testing.assert_allclose(g_x, g_y @ z.T * alpha, rtol=1e-13)
    np.testing.assert_allclose(g_z, alpha[:, None] * (x.T @ g_y), rtol=1e-13)
    untouched = np.setdiff1d(outside, sampled)
    assert np.all(g_x[:, untouched] == 0) and np.all(g_z[untouched] == 0)


def test_wta_crs_matmul_is_exactly_unbiased_over_its_sampling_distribution():
    x, z, p = _heavy_tailed_problem(2)
    k, count = wta_crs_deterministic_size(p, ratio=0.3, minimal_k=1)
    k, count = int(k), int(count)
    assert 0 < count < k  # a real split: both parts of the estimator are exercised
    mean, _ = _sampling_moments(x, z, p, count, k - count)
    np.testing.assert_allclose(mean, x @ z, rtol=1e-12, atol=1e-12)
    for other_count in (0, 1, count + 2):  # unbiased for any C
        mean, _ = _sampling_moments(x, z, p, other_count, 3)
        np.testing.assert_allclose(mean, x @ z, rtol=1e-12, atol=1e-12)
    # the official first-iteration weights are biased
    biased, _ = _sampling_moments(x, z, p, count, k - count, official_first_iteration=True)
    assert np.abs(biased - x @ z).max() > 1e-3 * np.abs(x @ z).max()


def test_wta_crs_matmul_mean_of_many_estimates_is_within_clt_bounds():
    """Seeded: the mean of 10⁴ estimates (each of s draws) lies within 5 standard errors
    √(Var Ŷ/10⁴) of X Z in every entry (Var Ŷ exact, from the sampling distribution; a false
    alarm has probability ~6e-7 per entry). The estimator is linear in the draws, so the mean
    of the 10⁴ estimates is the estimate with all 10⁴·s draws at once (checked on 20 of them)."""
    x, z, p = _heavy_tailed_problem(3)
    k, count = wta_crs_deterministic_size(p, ratio=0.3, minimal_k=1)
    k, count = int(k), int(count)
    s, trials = k - count, 10_000
    rng = np.random.default_rng(3)
    draws = _draw(rng, p, count, (trials, s))
    single = [wta_crs_matmul(x, z, p, d, num_deterministic=count) for d in draws[:20]]
    pooled = wta_crs_matmul(x, z, p, draws[:20].ravel(), num_deterministic=count)
    np.testing.assert_allclose(np.mean(single, axis=0), pooled, rtol=1e-12, atol=1e-12)
    mean_of_estimates = wta_crs_matmul(x, z, p, draws.ravel(), num_deterministic=count)
    _, variance = _sampling_moments(x, z, p, count, s)
    standard_error = np.sqrt(variance / trials)
    gap = np.abs(mean_of_estimates - x @ z)
    assert np.all(gap <= 5 * standard_error), (gap / standard_error).max()
    assert np.any(gap > 0.1 * standard_error)  # it is an estimate, not the exact product


def test_wta_crs_has_lower_variance_than_plain_column_row_sampling_on_heavy_tails():
    x, z, p = _heavy_tailed_problem(5)
    k, count = wta_crs_deterministic_size(p, ratio=0.3, minimal_k=1)
    k, count = int(k), int(count)
    _, wta = _sampling_moments(x, z, p, count, k - count)
    _, crs = _sampling_moments(x, z, p, 0, k)  # |C| = 0: k draws from p
    assert wta.sum() < crs.sum()  # exact variances: no sampling noise in the comparison


def test_wta_crs_matmul_official_longtail_drops_the_sampled_terms():
    x, z = np.array([[1.0, 2.0, 3.0]]), np.ones((3, 1))
    p = np.array([0.9995, 0.0003, 0.0002])
    paper = wta_crs_matmul(x, z, p, np.array([2]), num_deterministic=1)
    official = wta_crs_matmul(x, z, p, np.array([2]), num_deterministic=1, official_longtail=True)
    np.testing.assert_allclose(paper, [[1.0 + (1 - 0.9995) / 0.0002 * 3.0]], rtol=1e-12)
    np.testing.assert_array_equal(official, [[1.0]])


def test_wta_crs_numba_agrees_with_the_reference_on_repeated_draws():
    chosen = refimpl.backend("numba")
    x, z, p = _heavy_tailed_problem(8, M=5, n=30, N=4)
    sampled = np.array([20, 20, 21, 25, 20])
    to = chosen.asarray
    expected, pullback = refimpl.vjp(wta_crs_matmul, x, z, p, sampled, num_deterministic=4)
    got, fast_pullback = refimpl.vjp(
        wta_crs_matmul, to(x), to(z), to(p), to(sampled), num_deterministic=4, backend=chosen
    )
    np.testing.assert_allclose(chosen.to_numpy(got), expected, rtol=1e-12)
    g_y = np.linspace(-1.0, 1.0, 20).reshape(5, 4)
    for fast, reference in zip(fast_pullback(to(g_y)), pullback(g_y), strict=True):
        np.testing.assert_allclose(chosen.to_numpy(fast), reference, rtol=1e-12, atol=1e-14)


# -- the official code, transcribed (seq2seq/approxlinear/functional.py), run with torch ----------
def _official_subsample(a_norms, b_rows, sample_ratio, minimal_k, eps=1e-8):
    """``subsample_4D_B_by_norm`` (b = h = 1, deter_adaptive, sample_replacement) with
    ``k_adaptive_4D``, ``topk_selection_4D`` and ``sample_with_replacement_4D``: the deterministic
    rows, the drawn indices and the drawn rows as the official code scales them."""
    import torch

    n = b_rows.shape[0]
    k = min(max(int(n * sample_ratio), minimal_k), n)
    a = torch.from_numpy(a_norms)[None]
    b = torch.from_numpy(b_rows)
    norm_mult = a * torch.norm(b, dim=-1)[None]
    prob = (norm_mult + eps) / (norm_mult.sum(dim=1).unsqueeze(dim=1) + eps)
    top_k_values, _ = torch.topk(prob, k, dim=1, largest=True)
    top_k_values, _ = torch.sort(top_k_values, dim=1, descending=True)
    score = (1 - torch.cumsum(top_k_values, dim=1)) / (k - (torch.arange(k) + 1))
    min_score, deter_k_opt = score.mean(dim=0).min(dim=0)
    deter_k = 0 if 1 / k < min_score else int(deter_k_opt) + 1
    stoc_k = k - deter_k
    top_values, top_indices = torch.topk(prob, deter_k, dim=1, largest=True)
    top_indices, _ = torch.sort(top_indices, dim=1)
    residual_prob = prob.scatter(dim=1, index=top_indices, src=top_values * 0.0)
    top_k_prob = top_values.sum(dim=1)
    longtail = top_k_prob > (1 - 1e-3)
    prob_ = residual_prob.clone()
    prob_[longtail | ((residual_prob > 0.0).sum(dim=1) == 0), :] = 1
    drawn = torch.sort(torch.multinomial(prob_, stoc_k, replacement=True), dim=1)[0]
    rows = b[drawn[0]] * (1 - top_k_prob) * (1 - longtail.int())
    rows = rows / prob_[0, drawn[0]].unsqueeze(1) / stoc_k
    return prob[0].numpy(), top_indices[0].numpy(), b[top_indices[0]].numpy(), drawn[0].numpy(), rows.numpy()


def test_wta_crs_matches_the_official_code_given_its_draws():
    import torch

    torch.manual_seed(0)
    x, z, _ = _heavy_tailed_problem(9, M=3, n=40, N=5)
    a_norms = np.linalg.norm(x, axis=0)
    prob, kept, kept_rows, drawn, drawn_rows = _official_subsample(a_norms, z, sample_ratio=0.3, minimal_k=10)
    p = wta_crs_probabilities(x, z)
    np.testing.assert_allclose(p, prob, rtol=1e-12)
    k, count = wta_crs_deterministic_size(p, ratio=0.3)
    assert (int(k), int(count)) == (12, len(kept)) and 0 < len(kept) < 12
    official = x[:, kept] @ kept_rows + x[:, drawn] @ drawn_rows  # the estimate its backward forms
    ours = wta_crs_matmul(x, z, p, drawn, num_deterministic=int(count))
    np.testing.assert_allclose(ours, official, rtol=1e-12, atol=1e-12)
