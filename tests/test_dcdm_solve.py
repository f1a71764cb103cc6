"""DCDM iteration: CG and PCG reproduced by linear models, a direct solve, the stopping record,
A-conjugacy within the window, monotone energy error for any model, the official loop, refusals."""

import numpy as np
import pytest

import refimpl
from refimpl.solvers import dcdm_solve
from refimpl_conformance.cases.solvers.dcdm import spd_matrix


def _cg(a, b, x0, steps, preconditioner=None):
    """Textbook (preconditioned) conjugate gradients, its iterates x_0 .. x_steps."""
    m = np.eye(len(b)) if preconditioner is None else preconditioner
    x = x0.copy()
    r = b - a @ x
    z = m @ r
    p = z.copy()
    iterates = [x.copy()]
    for _ in range(steps):
        ap = a @ p
        alpha = (r @ z) / (p @ ap)
        x = x + alpha * p
        r_new = r - alpha * ap
        z_new = m @ r_new
        p = z_new + (r_new @ z_new) / (r @ z) * p
        r, z = r_new, z_new
        iterates.append(x.copy())
    return iterates


def _iterates(a, b, x0, model, steps, **kwargs):
    """DCDM's iterates x_0 .. x_steps (one run per prefix, tol = 0)."""
    return [dcdm_solve(a, b, x0, model, tol=0.0, max_iter=k, **kwargs)[0] for k in range(steps + 1)]


def _network(rng, n):
    """A fixed nonlinear 'network': q = tanh(W₁ r)·W₂, neither linear nor symmetric."""
    w1, w2 = rng.standard_normal((n, n)), rng.standard_normal((n, n)) / np.sqrt(n)

    def model(r):
        return np.tanh(3 * w1 @ r) @ w2

    return model


@pytest.mark.parametrize("seed", range(4))
def test_identity_model_reproduces_cg_and_the_direct_solve(seed):
    rng = np.random.default_rng(seed)
    n = 7
    a, b, x0 = spd_matrix(rng, n, condition=100.0), rng.standard_normal(n), rng.standard_normal(n)
    reference = _cg(a, b, x0, n - 1)
    for window in (1, 2, 3):
        for k, x in enumerate(_iterates(a, b, x0, lambda r: r, n - 1, window=window)):
            np.testing.assert_allclose(x, reference[k], rtol=1e-9, atol=1e-9 * np.abs(reference[k]).max())
    x, norms, iterations, converged = dcdm_solve(a, b, x0, lambda r: r)
    assert bool(converged) and int(iterations) <= n
    np.testing.assert_allclose(x, np.linalg.solve(a, b), rtol=1e-9)


def test_a_linear_spd_model_reproduces_preconditioned_cg():
    rng = np.random.default_rng(10)
    n = 8
    a, b = spd_matrix(rng, n, condition=1000.0), rng.standard_normal(n)
    m = np.diag(1 / np.diag(a)) + 0.1 * spd_matrix(rng, n, condition=3.0)  # symmetric positive definite
    reference = _cg(a, b, np.zeros(n), n - 1, preconditioner=m)
    for k, x in enumerate(_iterates(a, b, np.zeros(n), lambda r: m @ r, n - 1, window=2)):
        np.testing.assert_allclose(x, reference[k], rtol=1e-8, atol=1e-8 * np.abs(reference[k]).max())


def test_directions_are_a_conjugate_to_the_last_window_directions():
    rng = np.random.default_rng(11)
    n = 9
    a, b = spd_matrix(rng, n, condition=50.0), rng.standard_normal(n)
    model = _network(rng, n)
    for window in (1, 2, 3):
        xs = _iterates(a, b, np.zeros(n), model, 6, window=window)
        steps = [xs[i + 1] - xs[i] for i in range(6)]  # α_i q_i
        for i in range(6):
            for j in range(max(0, i - window), i):
                cosine = (
                    steps[i] @ a @ steps[j] / np.sqrt((steps[i] @ a @ steps[i]) * (steps[j] @ a @ steps[j]))
                )
                assert abs(cosine) < 1e-10, (window, i, j)
        if window == 1:  # and a network's direction is NOT conjugate to older ones
            older = steps[3] @ a @ steps[1] / np.sqrt((steps[3] @ a @ steps[3]) * (steps[1] @ a @ steps[1]))
            assert abs(older) > 1e-3


def test_any_model_never_increases_the_energy_error_and_the_record_is_the_true_residual():
    rng = np.random.default_rng(12)
    n = 10
    a, b = spd_matrix(rng, n, condition=200.0), rng.standard_normal(n)
    solution = np.linalg.solve(a, b)
    model = _network(rng, n)
    xs = _iterates(a, b, np.zeros(n), model, 12)
    energy = [np.sqrt((x - solution) @ a @ (x - solution)) for x in xs]
    assert all(later <= earlier * (1 + 1e-12) for earlier, later in zip(energy, energy[1:], strict=False))
    assert energy[-1] < energy[0]  # strictly: the network's directions are not orthogonal to r
    _, norms, iterations, _ = dcdm_solve(a, b, np.zeros(n), model, tol=0.0, max_iter=12)
    assert int(iterations) == 12 and norms.shape == (13,)
    np.testing.assert_allclose(norms, [np.linalg.norm(b - a @ x) for x in xs], rtol=1e-12)


def _official_dcdm(a, b, x_init, model, max_it, tol):
    """The official loop (two stored directions, α's initialized to 1, zero directions), written
    out independently: its iterates and residual norms."""
    n = len(b)
    p0, p1, ap0, ap1 = np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n)
    alpha0 = alpha1 = 1.0
    r = b - a @ x_init
    norm_r = np.linalg.norm(r)
    history = [norm_r]
    threshold = norm_r * tol
    x = x_init.copy()
    for _ in range(max_it):
        q = model(r / norm_r)
        q = q - p1 * (q @ ap1) / alpha1 - p0 * (q @ ap0) / alpha0
        ap0, p0, alpha0 = ap1, p1, alpha1
        ap1, p1 = a @ q, q
        alpha1 = p1 @ ap1
        x = x + p1 * (p1 @ r) / alpha1
        r = b - a @ x
        norm_r = np.linalg.norm(r)
        history.append(norm_r)
        if norm_r < threshold:
            break
    return x, np.array(history)


def test_window_two_matches_the_official_loop_with_a_network_model():
    rng = np.random.default_rng(13)
    n = 12
    a, b = spd_matrix(rng, n, condition=100.0), rng.standard_normal(n)
    model = _network(rng, n)
    official_x, official_norms = _official_dcdm(a, b, np.zeros(n), model, 30, 1e-6)
    x, norms, iterations, converged = dcdm_solve(a, b, np.zeros(n), model, tol=1e-6, max_iter=30)
    assert int(iterations) == len(official_norms) - 1
    assert bool(converged) == (official_norms[-1] < 1e-6 * official_norms[0])
    np.testing.assert_allclose(norms, official_norms, rtol=1e-8, atol=1e-12 * official_norms[0])
    np.testing.assert_allclose(x, official_x, rtol=1e-8, atol=1e-10)


def test_stopping_rule_is_relative_and_strict():
    rng = np.random.default_rng(14)
    n = 6
    a, b, x0 = spd_matrix(rng, n, condition=30.0), rng.standard_normal(n), rng.standard_normal(n)
    for tol in (1e-1, 1e-3, 1e-8):
        _, norms, iterations, converged = dcdm_solve(a, b, x0, lambda r: r, tol=tol)
        k = int(iterations)
        assert bool(converged) and norms[k] < tol * norms[0] and np.all(norms[:k] >= tol * norms[0])
    # capped: not converged, exactly max_iter iterations
    _, norms, iterations, converged = dcdm_solve(a, b, x0, lambda r: r, tol=1e-12, max_iter=2)
    assert int(iterations) == 2 and not bool(converged) and norms.shape == (3,)
    # scaling the system scales nothing in the record's ratios
    _, scaled, _, _ = dcdm_solve(1e3 * a, 1e3 * b, x0, lambda r: r, tol=1e-8)
    _, plain, _, _ = dcdm_solve(a, b, x0, lambda r: r, tol=1e-8)
    np.testing.assert_allclose(scaled / scaled[0], plain / plain[0], rtol=1e-6, atol=1e-14)


def test_zero_residual_and_zero_iterations():
    a, b, x0 = np.diag([2.0, 4.0]), np.array([2.0, -4.0]), np.array([1.0, -1.0])
    calls = []
    x, norms, iterations, converged = dcdm_solve(a, b, x0, lambda r: calls.append(r) or r)
    assert calls == [] and int(iterations) == 0 and bool(converged)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(norms, [0.0])
    x, norms, iterations, converged = dcdm_solve(a, np.array([1.0, 1.0]), x0, lambda r: r, max_iter=0)
    assert int(iterations) == 0 and not bool(converged) and norms.shape == (1,)
    np.testing.assert_array_equal(x, x0)


def test_consistent_singular_neumann_system_converges():
    n = 10
    a = 2 * np.eye(n) - np.eye(n, k=1) - np.eye(n, k=-1)
    a[0, 0] = a[-1, -1] = 1.0  # the constants span the null space
    rng = np.random.default_rng(15)
    b = rng.standard_normal(n)
    b -= b.mean()
    x, _, iterations, converged = dcdm_solve(a, b, np.zeros(n), lambda r: r)
    assert bool(converged) and int(iterations) <= n - 1
    np.testing.assert_allclose(a @ x, b, atol=1e-10)


def test_float32_runs_in_float32_to_a_reachable_tolerance():
    rng = np.random.default_rng(16)
    a, b = spd_matrix(rng, 6, condition=10.0), rng.standard_normal(6)
    x, norms, iterations, converged = dcdm_solve(
        a.astype(np.float32), b.astype(np.float32), np.zeros(6, np.float32), lambda r: r, tol=1e-4
    )
    assert x.dtype == norms.dtype == np.float32 and bool(converged)
    np.testing.assert_allclose(x, np.linalg.solve(a, b), rtol=1e-3, atol=1e-4)


def test_bad_models_are_refused_with_the_iteration():
    a, b = np.diag([1.0, 2.0, 0.0]), np.array([1.0, 1.0, 0.0])
    with pytest.raises(refimpl.InputError, match="null-space direction.*iteration 0"):
        dcdm_solve(a, b, np.zeros(3), lambda r: np.array([0.0, 0.0, 1.0]))
    with pytest.raises(refimpl.InputError, match="shape"):
        dcdm_solve(a, b, np.zeros(3), lambda r: r[:2])
    with pytest.raises(refimpl.InputError, match="symmetric"):
        dcdm_solve(np.array([[1.0, 1.0], [0.0, 1.0]]), np.ones(2), np.zeros(2), lambda r: r)
