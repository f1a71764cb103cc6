"""Acyclicity functions, the least-squares score, NOTEARS and TOPO's swap candidates: zero
exactly on every DAG of 3 nodes and positive on every other digraph, closed forms on the 2-cycle,
gradients against finite differences, the M-matrix domain, NOTEARS against a direct solve."""

import itertools
import math

import numpy as np
import pytest

import refimpl
from refimpl.structure_learning import (
    dagma_acyclicity_logdet,
    least_squares_sem_score,
    notears_acyclicity_exp,
    notears_augmented_lagrangian,
    poly_acyclicity,
    topo_acyclicity_logdet_abs,
    topo_swap_candidates,
)
from refimpl.structure_learning.acyclicity import candidate_sizes

BACKENDS = ["numpy", "numba", "cupy[host]"]
FUNCTIONS = [
    "notears_acyclicity_exp",
    "poly_acyclicity",
    "dagma_acyclicity_logdet",
    "topo_acyclicity_logdet_abs",
]


def _backend(name):
    if name == "cupy[host]":
        import refimpl_cupy

        return refimpl_cupy.host_backend()
    return refimpl.backend(name)


def _is_dag(mask):
    """Peel off nodes without incoming edges (self-loops count) until none is left."""
    remaining = set(range(mask.shape[0]))
    while remaining:
        sources = [j for j in remaining if not any(mask[i, j] for i in remaining)]
        if not sources:
            return False
        remaining -= set(sources)
    return True


def _all_digraphs_on_three_nodes():
    rng = np.random.default_rng(0)
    for bits in itertools.product([0, 1], repeat=9):
        mask = np.array(bits, dtype=bool).reshape(3, 3)
        # weights of both signs, |w| ∈ [0.2, 0.3]: ρ(W∘W) ≤ 0.27 and ρ(|W|) ≤ 0.9 (inside the domain)
        weights = rng.uniform(0.2, 0.3, size=(3, 3)) * rng.choice([-1.0, 1.0], size=(3, 3))
        yield mask, np.where(mask, weights, 0.0)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", FUNCTIONS)
def test_h_is_zero_exactly_on_the_dags_of_three_nodes_and_positive_on_every_other_digraph(name, backend):
    call = _backend(backend).get(name)
    dags = cyclic = 0
    for mask, W in _all_digraphs_on_three_nodes():
        h = float(call(W))
        if _is_dag(mask):
            assert h == 0.0, (mask.astype(int).tolist(), h)
            dags += 1
        else:
            # the weakest: a 3-cycle of weights 0.2, h ≥ 3·0.2⁶/27 (poly) ≈ 7e-6
            assert h > 5e-6, (mask.astype(int).tolist(), h)
            cyclic += 1
    assert (dags, cyclic) == (25, 512 - 25)  # 25 labelled DAGs on 3 nodes (OEIS A003024)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", FUNCTIONS)
def test_the_gradient_vanishes_exactly_on_a_dag_and_not_after_one_back_edge(name, backend):
    rng = np.random.default_rng(1)
    order = rng.permutation(6)
    W = np.triu(rng.uniform(0.3, 0.9, size=(6, 6)), k=1)[np.ix_(order, order)]  # ρ(|W|) = 0
    _, pullback = refimpl.vjp(name, W, backend=_backend(backend))
    np.testing.assert_array_equal(pullback(np.array(1.0))[0], 0.0)  # ∂h/∂W_ij counts paths j ⇝ i
    i, j = np.argwhere(W != 0)[0]
    back = W.copy()
    back[j, i] = 0.1
    h, pullback = refimpl.vjp(name, back, backend=_backend(backend))
    assert float(h) > 0
    assert np.abs(pullback(np.array(1.0))[0]).max() > 0.01


@pytest.mark.parametrize("backend", BACKENDS)
def test_known_values_of_the_two_cycle(backend):
    a, b = 0.9, -0.6
    W = np.array([[0.0, a], [b, 0.0]])
    get = _backend(backend).get
    np.testing.assert_allclose(get("notears_acyclicity_exp")(W), 2 * math.cosh(abs(a * b)) - 2, rtol=1e-14)
    np.testing.assert_allclose(get("dagma_acyclicity_logdet")(W), -math.log(1 - (a * b) ** 2), rtol=1e-14)
    np.testing.assert_allclose(get("topo_acyclicity_logdet_abs")(W), -math.log(1 - abs(a * b)), rtol=1e-14)
    # (I + B)² with B = [[0, a²/2], [b²/2, 0]]: tr = 2 + 2·a²b²/4
    np.testing.assert_allclose(get("poly_acyclicity")(W), (a * b) ** 2 / 2, rtol=1e-14)
    # −log det(sI − A) + d log s = −log(1 − a²b²/s²)
    np.testing.assert_allclose(
        get("dagma_acyclicity_logdet")(W, s=1.5), -math.log(1 - (a * b) ** 2 / 2.25), rtol=1e-14
    )
    np.testing.assert_allclose(
        get("topo_acyclicity_logdet_abs")(W, s=0.8), -math.log(1 - abs(a * b) / 0.64), rtol=1e-14
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_tiny_cycle_keeps_its_relative_accuracy(backend):
    # a cycle of weight ε: h ≈ (εa)², far below the ulps of tr(E) − d = 2 + O(ε²) − 2
    eps, a = 1e-7, 0.8
    W = np.array([[0.0, a, 0.0], [0.0, 0.0, 0.0], [eps, 0.0, 0.0]])
    W[1, 2] = 0.5  # 0 → 1 → 2 → 0: the cycle product εa·0.5
    product = (eps * a * 0.5) ** 2  # of W ∘ W
    get = _backend(backend).get
    np.testing.assert_allclose(get("notears_acyclicity_exp")(W), 3 * product / math.factorial(3), rtol=1e-9)
    np.testing.assert_allclose(get("dagma_acyclicity_logdet")(W), product, rtol=1e-9)
    np.testing.assert_allclose(get("poly_acyclicity")(W), 3 * product / 27, rtol=1e-9)


def _finite_difference_gradient(f, W, step=1e-6):
    gradient = np.zeros_like(W)
    for index in np.ndindex(W.shape):
        e = np.zeros_like(W)
        e[index] = step
        gradient[index] = (f(W + e) - f(W - e)) / (2 * step)
    return gradient


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", FUNCTIONS)
def test_gradient_matches_finite_differences(name, backend):
    rng = np.random.default_rng(2)
    W = rng.standard_normal((4, 4)) + 0.05  # no zero entry: |W| is smooth here
    W *= 0.8 / math.sqrt(max(abs(np.linalg.eigvals(W * W))))  # ρ(W∘W) = 0.64, ρ(|W|) < 1
    if name == "topo_acyclicity_logdet_abs":
        W *= 0.8 / max(abs(np.linalg.eigvals(np.abs(W))))
    kwargs = {"s": 1.3} if "logdet" in name else {}
    op = refimpl.get(name)
    _, pullback = refimpl.vjp(name, W, backend=_backend(backend), **kwargs)
    expected = _finite_difference_gradient(lambda x: float(op(x, **kwargs)), W)
    np.testing.assert_allclose(pullback(np.array(2.0))[0], 2 * expected, rtol=1e-7, atol=1e-9)


def test_gradients_match_the_stated_closed_forms():
    rng = np.random.default_rng(3)
    W = 0.15 * rng.standard_normal((5, 5))  # ρ(|W|) < 1
    d, s = 5, 1.2
    A = W * W
    _, pullback = refimpl.vjp(notears_acyclicity_exp, W)
    from scipy.linalg import expm

    np.testing.assert_allclose(pullback(np.array(1.0))[0], expm(A).T * 2 * W, rtol=1e-12, atol=1e-15)
    _, pullback = refimpl.vjp(dagma_acyclicity_logdet, W, s=s)
    np.testing.assert_allclose(
        pullback(np.array(1.0))[0], 2 * W * np.linalg.inv(s * np.eye(d) - A).T, rtol=1e-12, atol=1e-15
    )
    _, pullback = refimpl.vjp(poly_acyclicity, W)
    power = np.linalg.matrix_power(np.eye(d) + A / d, d - 1)
    np.testing.assert_allclose(pullback(np.array(1.0))[0], 2 * W * power.T, rtol=1e-12, atol=1e-15)
    _, pullback = refimpl.vjp(topo_acyclicity_logdet_abs, W)
    G_h = np.linalg.inv(np.eye(d) - np.abs(W)).T
    np.testing.assert_allclose(pullback(np.array(1.0))[0], np.sign(W) * G_h, rtol=1e-12, atol=1e-15)


def test_log_determinants_refuse_input_outside_the_m_matrix_domain():
    W = np.array([[0.0, 2.0], [1.0, 0.0]])  # ρ(W∘W) = 2 > 1, det(I − W∘W) = 1 − 4 < 0
    with pytest.raises(refimpl.InputError, match="M-matrix domain"):
        dagma_acyclicity_logdet(W)
    assert float(dagma_acyclicity_logdet(W, s=2.5)) == pytest.approx(-math.log(1 - 4 / 6.25))
    # ρ(W∘W) = 0.9: det(I − A) > 0, but two eigenvalues of A beyond 1 would also give det > 0
    two_cycles = np.zeros((4, 4))
    two_cycles[0, 1] = two_cycles[1, 0] = 1.2  # ρ = 1.44: det of this block 1 − 1.44² < 0
    two_cycles[2, 3] = two_cycles[3, 2] = 1.2  # a second one: the determinant is positive again
    assert np.linalg.det(np.eye(4) - two_cycles**2) > 0
    with pytest.raises(refimpl.InputError, match="leading principal minor 2"):
        dagma_acyclicity_logdet(two_cycles)
    with pytest.raises(refimpl.InputError, match="ρ\\(\\|W\\|\\) ≥ s"):
        topo_acyclicity_logdet_abs(np.array([[0.0, -2.0], [2.0, 0.0]]))


def test_topo_official_variant_ignores_the_sign_of_the_determinant():
    W = np.array([[0.0, 2.0], [-2.0, 0.0]])  # det(I − |W|) = −3
    np.testing.assert_allclose(topo_acyclicity_logdet_abs(W, check_domain=False), -math.log(3.0))
    _, pullback = refimpl.vjp(topo_acyclicity_logdet_abs, W, check_domain=False)
    G_h = np.linalg.inv(np.eye(2) - np.abs(W)).T
    np.testing.assert_allclose(pullback(np.array(1.0))[0], np.sign(W) * G_h, rtol=1e-14)
    # inside the domain both variants agree
    inside = np.array([[0.0, 0.5], [-0.4, 0.0]])
    np.testing.assert_allclose(
        topo_acyclicity_logdet_abs(inside, check_domain=False), topo_acyclicity_logdet_abs(inside), rtol=1e-14
    )


def test_a_large_weight_overflows_the_exponential_into_a_range_error():
    W = np.array([[30.0, 0.0], [0.0, 0.0]])  # exp(900) overflows float64
    with pytest.raises(refimpl.RangeError):
        notears_acyclicity_exp(W)
    np.testing.assert_allclose(notears_acyclicity_exp(W / 10), math.exp(9.0) - 1, rtol=1e-13)


# -- the least-squares score ----------------------------------------------------------------------
def test_least_squares_score_value_and_gradient():
    rng = np.random.default_rng(4)
    X = rng.standard_normal((20, 3))
    W = rng.standard_normal((3, 3))
    loss, pullback = refimpl.vjp(least_squares_sem_score, X, W)
    R = X - X @ W
    np.testing.assert_allclose(loss, np.sum(R**2) / 40, rtol=1e-14)
    np.testing.assert_allclose(pullback(np.array(1.0))[0], -X.T @ R / 20, rtol=1e-13)
    expected = _finite_difference_gradient(lambda w: float(least_squares_sem_score(X, w)), W)
    np.testing.assert_allclose(pullback(np.array(1.0))[0], expected, rtol=1e-7)
    assert float(least_squares_sem_score(X, np.eye(3))) == 0.0  # W = I fits exactly (not a DAG)


# -- NOTEARS -------------------------------------------------------------------------------------------
def _sem(W, n, seed):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, W.shape[0])) @ np.linalg.inv(np.eye(W.shape[0]) - W)
    return X - X.mean(axis=0)


def test_notears_recovers_the_true_dag_and_matches_the_direct_regression():
    W_true = np.array([[0.0, 1.5, 0.0], [0.0, 0.0, -1.2], [0.0, 0.0, 0.0]])
    X = _sem(W_true, 1000, 5)
    W, W_raw, h, rho, alpha = notears_augmented_lagrangian(X, lambda1=0.0)
    np.testing.assert_array_equal(W != 0, W_true != 0)
    # direct solve: the least-squares optimum among the DAGs of the true order 0, 1, 2 is each
    # node regressed on all its predecessors (ordinary least squares)
    direct = np.zeros((3, 3))
    direct[0, 1] = np.linalg.lstsq(X[:, [0]], X[:, 1], rcond=None)[0][0]
    direct[[0, 1], 2] = np.linalg.lstsq(X[:, [0, 1]], X[:, 2], rcond=None)[0]
    np.testing.assert_allclose(W_raw, direct, atol=0.01)  # up to the penalty's inexactness
    W_sparse, _, _, _, _ = notears_augmented_lagrangian(X, lambda1=0.1)
    np.testing.assert_array_equal(W_sparse != 0, W_true != 0)
    # the convergence record: h ≤ h_tol at the end, ρ non-decreasing, α = Σ ρ_k h_k
    assert h[-1] <= 1e-8 < h[0]
    assert np.all(np.diff(rho) >= 0)
    np.testing.assert_allclose(alpha, np.cumsum(rho * h), rtol=1e-12)
    assert float(notears_acyclicity_exp(W_raw)) == pytest.approx(h[-1], rel=1e-12)


def test_notears_iteration_limits_stop_the_record():
    X = _sem(np.array([[0.0, 1.0], [0.0, 0.0]]), 200, 6)
    _, _, h, rho, alpha = notears_augmented_lagrangian(X, lambda1=0.1, max_iter=1)
    assert len(h) == len(rho) == len(alpha) == 1
    _, _, h, rho, _ = notears_augmented_lagrangian(X, lambda1=0.1, rho_max=100.0)
    assert rho[-1] <= 100.0
    # two independent variables: W = 0 is feasible with h = 0 at once
    W, _, h, _, _ = notears_augmented_lagrangian(_sem(np.zeros((2, 2)), 200, 7), lambda1=0.1)
    np.testing.assert_array_equal(W, 0.0)


# -- TOPO's candidates ----------------------------------------------------------------------------------
def test_candidate_sizes_follow_the_paper_formulas():
    assert candidate_sizes(2) == (0, 3)
    assert candidate_sizes(3) == (1, 4)
    assert candidate_sizes(10) == (15, 28)  # √10·9·1 = 28.46
    assert candidate_sizes(100) == (150, 1980)  # 10·99·2 = 1980 < 4950
    d = 40
    superlinear = math.floor(math.sqrt(d) * (d - 1) * math.log10(d))
    assert candidate_sizes(d) == (min(60, superlinear, 780), max(60, min(superlinear, 780)))


def test_swap_candidates_rank_forbidden_pairs_and_zero_means_no_cycle():
    rng = np.random.default_rng(8)
    d = 7
    order = rng.permutation(d)
    position = np.argsort(order)
    W = np.where(position[:, None] < position[None, :], rng.uniform(0.2, 0.9, (d, d)), 0.0)
    W *= rng.random((d, d)) < 0.4  # a sparse W_π
    small, large = topo_swap_candidates(W, order, size_small=5, size_large=21)
    G_h = np.linalg.inv(np.eye(d) - np.abs(W)).T
    forbidden = [(i, j) for i in range(d) for j in range(d) if i != j and position[i] > position[j]]
    ranked = sorted(forbidden, key=lambda p: (round(G_h[p], 12), p[0] * d + p[1]))
    assert [tuple(p) for p in small] == ranked[:5]
    assert sorted(map(tuple, large)) == sorted(forbidden)  # 21 = d(d − 1)/2: every forbidden pair
    # a pair with G_h = 0 creates no cycle when its edge is added to W_π
    for i, j in large:
        grown = W.copy()
        grown[i, j] = 0.5
        assert (float(topo_acyclicity_logdet_abs(grown)) == 0.0) == (G_h[i, j] == 0.0)


def test_swap_candidates_official_ties_keep_every_tied_pair_in_row_major_order():
    W = np.zeros((3, 3))
    W[0, 1] = 0.8
    order = np.array([0, 1, 2])
    small, _ = topo_swap_candidates(W, order, size_small=1, size_large=1)
    np.testing.assert_array_equal(small, [[2, 0]])
    small, large = topo_swap_candidates(W, order, size_small=1, size_large=3, official_ties=True)
    np.testing.assert_array_equal(small, [[2, 0], [2, 1]])  # both have G_h = 0
    np.testing.assert_array_equal(large, [[1, 0], [2, 0], [2, 1]])  # row-major
    empty, _ = topo_swap_candidates(W, order, size_small=0)
    assert empty.shape == (0, 2)


def test_swap_candidates_refuse_a_non_permutation_and_w_outside_the_domain():
    with pytest.raises(refimpl.InputError, match="permutation"):
        topo_swap_candidates(np.zeros((3, 3)), np.array([0, 2, 2]))
    with pytest.raises(refimpl.InputError, match="M-matrix domain"):
        topo_swap_candidates(np.array([[0.0, 2.0], [2.0, 0.0]]), np.array([0, 1]))
