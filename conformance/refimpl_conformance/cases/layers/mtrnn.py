"""Conformance cases for `mtrnn_cell`."""

from __future__ import annotations

import numpy as np

from ..._cases import Bench, OpCases, Sample, register

NOTES = {
    "TAU_ONE": "τ = 1: an ordinary tanh RNN, h_{t−1} drops out (its cotangent is exactly 0)",
    "SLOW_LEVEL": "τ = 100: h barely moves, the 1 − 1/τ decay carries almost all of h̄",
    "SATURATED": "|h| ~ 20: tanh saturates, 1 − d² underflows towards 0 (computed from d, not cosh)",
}


def _sample(rng, B, D, Z, U, tau, scale=1.0, name="random"):
    h_prev = scale * rng.standard_normal((B, D))
    args = (
        h_prev,
        np.tanh(h_prev) + 0.1 * rng.standard_normal((B, D)),
        rng.standard_normal((B, Z)),
        rng.standard_normal((B, U)),
        rng.standard_normal((D, D)) / np.sqrt(D),
        rng.standard_normal((D, Z)) / np.sqrt(Z),
        rng.standard_normal((D, U)) / np.sqrt(U),
        rng.standard_normal(D),
    )
    return Sample(name, args, {"tau": tau})


def _random(rng, B, D, Z, U):
    return _sample(rng, B, D, Z, U, float(rng.choice([1.0, 2.0, 4.0, 8.0, 70.0])) * rng.uniform(1, 1.5))


def _edges():
    rng = np.random.default_rng(11)
    saturated = _sample(rng, 3, 4, 2, 2, 2.0, scale=20.0, name="saturated |h| ~ 20")
    return [
        _with_flags(_sample(rng, 3, 4, 2, 3, 1.0, name="tau = 1"), ("TAU_ONE",)),
        _with_flags(_sample(rng, 2, 5, 3, 1, 100.0, name="tau = 100"), ("SLOW_LEVEL",)),
        _with_flags(saturated, ("SATURATED",)),
        _with_flags(_sample(rng, 1, 1, 1, 1, 2.0, name="all sizes 1"), ()),
    ]


def _with_flags(sample, flags):
    sample.flags = flags
    return sample


def _make(rng, rows, cols):
    """A batch of ``rows`` sequences, D = ``cols`` units, Z = U = cols/4."""
    small = max(1, cols // 4)
    return _sample(rng, rows, cols, small, small, 4.0, name="bench")


def _mtrnn_torch(torch, args, kwargs, cotangent):
    """The same cell in PyTorch (F.linear + tanh), autograd backward."""
    tensors = [torch.from_numpy(a).requires_grad_() for a in args]
    g_h, g_d = (torch.from_numpy(c) for c in cotangent)
    inverse_tau = 1 / kwargs["tau"]

    def step():
        for t in tensors:
            t.grad = None
        h_prev, d_prev, z, d_up, w_dd, w_dz, w_up, b = tensors
        u = d_prev @ w_dd.T + z @ w_dz.T + d_up @ w_up.T + b
        h = (1 - inverse_tau) * h_prev + inverse_tau * u
        d = torch.tanh(h)
        torch.autograd.backward((h, d), (g_h, g_d))
        return h, d

    return step


def _blas(args, kwargs):
    h_prev, d_prev, z, d_up, w_dd, w_dz, w_up, _ = args

    def products():
        s = d_prev @ w_dd.T + z @ w_dz.T + d_up @ w_up.T
        return s @ w_dd, s @ w_dz, s @ w_up, s.T @ d_prev, s.T @ z, s.T @ d_up

    return products


register(
    OpCases(
        "mtrnn_cell",
        dims={"B": (1, 5), "D": (1, 6), "Z": (1, 4), "U": (1, 4)},
        random=_random,
        edges=_edges,
        notes=NOTES,
        bench=Bench(
            make=_make,
            torch=_mtrnn_torch,
            torch_label="the cell written with torch matmul + tanh, autograd",
            transcendentals=lambda args, kwargs: args[0].size,  # one tanh per unit
            blas=_blas,
        ),
    )
)
