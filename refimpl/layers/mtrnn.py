"""The PV-RNN multiple-timescale (MTRNN) cell (A Novel Predictive-Coding-Inspired Variational
RNN Model for Online Prediction and Recognition)."""

from __future__ import annotations

import numpy as np

from ..authoring import FloatArray, Paper, RealScalar, op

__all__ = ["PAPER", "mtrnn_cell"]

PAPER = Paper(
    "A Novel Predictive-Coding-Inspired Variational RNN Model for Online Prediction and Recognition",
    arxiv="1811.01339",
    year=2019,
)


@op(
    inputs={
        "h_prev": FloatArray("B", "D"),
        "d_prev": FloatArray("B", "D"),
        "z": FloatArray("B", "Z"),
        "d_up": FloatArray("B", "U"),
        "w_dd": FloatArray("D", "D"),
        "w_dz": FloatArray("D", "Z"),
        "w_up": FloatArray("D", "U"),
        "b": FloatArray("D"),
        "tau": RealScalar(1),
    },
    outputs=("h", "d"),
    differentiable=("h_prev", "d_prev", "z", "d_up", "w_dd", "w_dz", "w_up", "b"),
)
def mtrnn_cell(h_prev, d_prev, z, d_up, w_dd, w_dz, w_up, b, *, tau):
    r"""One step of a PV-RNN level: a leaky-integrator (multiple-timescale) RNN unit.

    Each level l of PV-RNN is an MTRNN whose internal state h decays with its own time constant
    τ_l (slow at the top, fast at the bottom); its input is the level's previous output d, the
    level's latent z_t (sampled from the posterior or the prior, outside this op) and the
    output of the level above at the same step (paper §2). The cell is one step; a
    sequence is the step applied T times (``h, d`` fed back as ``h_prev, d_prev``).

    Forward, row-wise (a row is one sequence of the batch)::

        u   = W_dd d_{t−1} + W_dz z_t + W_up d^{l+1}_t + b
        h_t = (1 − 1/τ) h_{t−1} + (1/τ) u
        d_t = tanh(h_t)

    τ = 1 is an ordinary tanh RNN (h_{t−1} drops out). The top level has no level above: pass
    ``d_up`` of zeros (any width U ≥ 1; its weights then get zero gradient).

    Backward. With cotangents ``h̄_t`` and ``d̄_t`` of the two outputs::

        ĥ      = h̄_t + d̄_t ⊙ (1 − d_t²)          (tanh' = 1 − tanh²; d_t also feeds h_t's users)
        h̄_{t−1} = (1 − 1/τ) ĥ                    (∂h_t/∂h_{t−1} = (1 − 1/τ) I)
        s      = ĥ / τ                           (the cotangent of u)
        d̄_{t−1} = s W_dd,  z̄_t = s W_dz,  d̄^{l+1}_t = s W_up
        W̄_dd = sᵀ d_{t−1},  W̄_dz = sᵀ z_t,  W̄_up = sᵀ d^{l+1}_t,  b̄ = Σ_rows s

    Unrolling: the step's pullback, chained from t = T down to 1 with the cotangents of
    ``h_{t−1}, d_{t−1}`` added to the previous step's output cotangents, is back-propagation
    through time; the weight cotangents are summed over the steps.

    The time constants and the level sizes are set per experiment in the paper (no universal
    value, so ``tau`` is required); the posterior's adaptive vectors A_t, the prior/posterior
    networks and the error-regression inference are outside the cell. The meta-prior-weighted
    KL is ``refimpl.losses.diag_gaussian_kl``.

    Args:
        h_prev: h_{t−1} (B, D), the internal (pre-tanh) state.
        d_prev: d_{t−1} (B, D), the previous output (``tanh(h_prev)`` in the model; a separate
            input so that a caller may start from any d_0, as the paper's d_0 = 0).
        z: z_t (B, Z), the level's latent at step t.
        d_up: d^{l+1}_t (B, U), the output of the level above (zeros at the top level).
        w_dd: W_dd (D, D); w_dz: W_dz (D, Z); w_up: W_up (D, U); b: bias (D,).
        tau: the level's time constant τ ≥ 1, required (paper: per level and per experiment).

    Returns:
        h: h_t (B, D); d: d_t = tanh(h_t) (B, D).

    Reference: Ahmadi and Tani, *A Novel Predictive-Coding-Inspired Variational RNN Model for
    Online Prediction and Recognition*, Neural Computation 31(11), 2019, arXiv:1811.01339, §2.

    >>> import numpy as np, refimpl
    >>> one = np.ones((1, 1))
    >>> h, d = refimpl.layers.mtrnn_cell(2 * one, 0 * one, one, one, one, one, one, np.zeros(1), tau=2.0)
    >>> h, d.round(6)
    (array([[2.]]), array([[0.964028]]))
    """
    u = d_prev @ w_dd.T + z @ w_dz.T + d_up @ w_up.T + b
    inverse_tau = h_prev.dtype.type(1 / tau)
    h = (1 - inverse_tau) * h_prev + inverse_tau * u
    d = np.tanh(h)
    return (h, d), (d_prev, z, d_up, w_dd, w_dz, w_up, d, inverse_tau)


@mtrnn_cell.defvjp
def mtrnn_cell_backward(residuals, cotangents):
    g_h, g_d = cotangents
    d_prev, z, d_up, w_dd, w_dz, w_up, d, inverse_tau = residuals
    g_h_total = g_h + g_d * (1 - d * d)
    g_h_prev = (1 - inverse_tau) * g_h_total
    s = inverse_tau * g_h_total
    return (
        g_h_prev,
        s @ w_dd,
        s @ w_dz,
        s @ w_up,
        s.T @ d_prev,
        s.T @ z,
        s.T @ d_up,
        s.sum(axis=0),
    )
