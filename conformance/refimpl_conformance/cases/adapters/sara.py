"""Conformance cases for `sara_threshold_mask`, `sara_sparse_reparam` and `masked_nuclear_norm`,
and the transcriptions of the official code's two deviations."""

from __future__ import annotations

import numpy as np

from ..._cases import Bench, OpCases, Sample, register
from ...deviations import transcribes

MASK_NOTES = {
    "ALL_TRAINABLE": "τ above every |W0|: the whole weight is trainable",
    "NONE_TRAINABLE": "τ below every |W0|: the mask is empty",
    "TIE_AT_TAU": "|W0| = τ exactly (0.5, 0.25 are exact in both dtypes): strict '<' keeps it frozen",
    "SIGNS": "negative weights of small magnitude are trainable too (|W0|, not W0)",
    "CONV_KERNEL": "a 4-d convolution kernel: the mask has any shape",
    "BIAS_VECTOR": "a 1-d bias",
    "SCALAR": "a 0-d parameter",
}

REPARAM_NOTES = {
    "THETA_IS_W0": "Θ = W0 (SaRA's initialization): W = W0 exactly (the official release gives |W0| on M)",
    "EMPTY_MASK": "M all False: W = W0 and Θ̄ = 0",
    "FULL_MASK": "M all True: W = Θ and Θ̄ = W̄",
    "CONV_KERNEL": "a 4-d convolution kernel",
    "BIAS_VECTOR": "a 1-d bias",
    "SCALAR": "a 0-d parameter",
}

NUCLEAR_NOTES = {
    "FULL_MASK": "M all True: the nuclear norm of Θ itself",
    "EMPTY_MASK": "M all False: ‖0‖_* = 0 and Θ̄ = 0 (the SVD of the zero matrix is arbitrary, masked away)",
    "SINGLE_ENTRY": "one trainable entry: ‖Θ ⊙ M‖_* = |θ| and Θ̄ = sign(θ) there (rank 1; the null-space "
    "part of U Vᵀ vanishes on that entry)",
    "DIAGONAL": "a diagonal mask: ‖Θ ⊙ M‖_* = Σ |θ_ii|, Θ̄ = sign(θ_ii) on the diagonal",
    "REPEATED_SINGULAR_VALUES": "2 × (orthonormal columns): every σ equal; the vectors are any rotation, yet "
    "U Vᵀ = Θ/2 is unique (no 1/(σ_i² − σ_j²) terms)",
    "TALL": "out > in",
    "WIDE": "out < in",
}


# -- sara_threshold_mask -------------------------------------------------------------------------
def _mask_random(rng, O, I):  # noqa: N803 - dimension names as in the specs
    W0 = 5e-3 * rng.standard_normal((O, I))
    return Sample("random", (W0,), {"tau": float(rng.choice([2e-3, 4e-3, 1e-2]))})


def _mask_edges():
    rng = np.random.default_rng(19)
    W0 = 5e-3 * rng.standard_normal((4, 5))
    return [
        Sample("τ = 1 above every |W0|", (W0,), {"tau": 1.0}, flags=("ALL_TRAINABLE",)),
        Sample("τ = 1e-9 below every |W0|", (W0,), {"tau": 1e-9}, flags=("NONE_TRAINABLE",)),
        Sample(
            "|W0| = τ = 0.5 (strict)",
            (np.array([[0.5, -0.5, 0.25], [-0.25, 0.75, 0.0]]),),
            {"tau": 0.5},
            flags=("TIE_AT_TAU", "SIGNS"),
            comment="M = [[F, F, T], [T, F, T]]",
        ),
        Sample(
            "conv kernel (3, 2, 3, 3)",
            (5e-3 * rng.standard_normal((3, 2, 3, 3)),),
            {"tau": 2e-3},
            flags=("CONV_KERNEL",),
        ),
        Sample("bias (7,)", (5e-3 * rng.standard_normal(7),), {"tau": 2e-3}, flags=("BIAS_VECTOR",)),
        Sample("0-d weight", (np.array(-1e-3),), {"tau": 2e-3}, flags=("SCALAR", "SIGNS")),
    ]


register(
    OpCases(
        "sara_threshold_mask",
        dims={"O": (1, 6), "I": (1, 6)},
        random=_mask_random,
        edges=_mask_edges,
        notes=MASK_NOTES,
        defaults={},
    )
)


# -- sara_sparse_reparam -------------------------------------------------------------------------
def _reparam_sample(rng, shape, tau=2e-3):
    W0 = 5e-3 * rng.standard_normal(shape)
    M = np.abs(W0) < tau
    Theta = np.where(M, W0 + 1e-3 * rng.standard_normal(shape), rng.standard_normal(shape))  # off M: ignored
    return W0, M, Theta


def _reparam_random(rng, O, I):  # noqa: N803
    return Sample("random", _reparam_sample(rng, (O, I), tau=float(rng.choice([2e-3, 5e-3]))))


def _reparam_edges():
    rng = np.random.default_rng(2409)
    W0, M, Theta = _reparam_sample(rng, (4, 5))
    return [
        Sample("Θ = W0 (initialization)", (W0, M, W0.copy()), flags=("THETA_IS_W0",), comment="W = W0"),
        Sample("M all False", (W0, np.zeros_like(M), Theta), flags=("EMPTY_MASK",)),
        Sample("M all True", (W0, np.ones_like(M), Theta), flags=("FULL_MASK",)),
        Sample("conv kernel (3, 2, 3, 3)", _reparam_sample(rng, (3, 2, 3, 3)), flags=("CONV_KERNEL",)),
        Sample("bias (7,)", _reparam_sample(rng, (7,)), flags=("BIAS_VECTOR",)),
        Sample(
            "0-d weight on the mask", (np.array(-1e-3), np.array(True), np.array(0.25)), flags=("SCALAR",)
        ),
    ]


def _reparam_torch(torch, args, kwargs, cotangent):
    """torch.where(M, Θ, W0) (the dense form of the official ``param1[mask] = param2``) and autograd."""
    W0, M, Theta = (torch.from_numpy(a) for a in args)
    Theta.requires_grad_()
    g_W = torch.from_numpy(cotangent)

    def step():
        W = torch.where(M, Theta, W0)
        Theta.grad = None
        W.backward(g_W)
        return W

    return step


register(
    OpCases(
        "sara_sparse_reparam",
        dims={"O": (1, 6), "I": (1, 6)},
        random=_reparam_random,
        edges=_reparam_edges,
        notes=REPARAM_NOTES,
        defaults={},
        bench=Bench(
            sizes={"O": "rows", "I": "cols"},
            torch=_reparam_torch,
            torch_label="torch.where(M, Θ, W0) (autograd)",
        ),
    )
)


# -- masked_nuclear_norm -------------------------------------------------------------------------
def _nuclear_random(rng, O, I):  # noqa: N803
    # redraw until Θ ⊙ M is well conditioned: a near-zero singular value is the norm's kink
    # (finite differences straddle it), a regime of its own (the SINGLE_ENTRY / EMPTY_MASK edges)
    for _ in range(100):
        M = rng.random((O, I)) < float(rng.choice([0.6, 0.9]))
        Theta = rng.standard_normal((O, I))
        singular_values = np.linalg.svd(np.where(M, Theta, 0.0), compute_uv=False)
        if singular_values[-1] > 0.05 * singular_values[0]:
            return Sample("random", (Theta, M))
    raise RuntimeError("no well-conditioned masked matrix drawn")


def _nuclear_edges():
    rng = np.random.default_rng(6633)
    Theta = rng.standard_normal((4, 3))
    single = np.zeros((4, 3), dtype=bool)
    single[2, 1] = True
    orthonormal, _ = np.linalg.qr(rng.standard_normal((5, 3)))
    diagonal = np.eye(3, dtype=bool)
    return [
        Sample("M all True (4, 3)", (Theta, np.ones((4, 3), dtype=bool)), flags=("FULL_MASK", "TALL")),
        Sample("M all False", (Theta, np.zeros((4, 3), dtype=bool)), flags=("EMPTY_MASK",)),
        Sample("one trainable entry", (Theta, single), flags=("SINGLE_ENTRY",), comment="‖·‖_* = |Θ[2, 1]|"),
        Sample("diagonal mask (3, 3)", (rng.standard_normal((3, 3)), diagonal), flags=("DIAGONAL",)),
        Sample(
            "2 × orthonormal columns (5, 3), M all True",
            (2.0 * orthonormal, np.ones((5, 3), dtype=bool)),
            flags=("REPEATED_SINGULAR_VALUES", "TALL"),
            comment="σ = (2, 2, 2): norm 6, Θ̄ = Θ/2",
        ),
        Sample(
            "wide (2, 6), 80% mask", (rng.standard_normal((2, 6)), rng.random((2, 6)) < 0.8), flags=("WIDE",)
        ),
    ]


register(
    OpCases(
        "masked_nuclear_norm",
        dims={"O": (1, 6), "I": (1, 6)},
        random=_nuclear_random,
        edges=_nuclear_edges,
        notes=NUCLEAR_NOTES,
        defaults={},
    )
)


# -- transcriptions of the official code's deviations (``refimpl deviations``) ------------------------
@transcribes("sara-official-abs-first-forward", outputs=("W",))
def _sara_official_first_forward(W0, M, Theta, *, dtype):
    """sjtuplayer/SaRA: ``Sparse.apply(param, trainable.abs(), mask)`` on the first forward."""
    return {"W": np.where(M, np.abs(Theta), W0)}


@transcribes("sara-official-nuclear-norm-never-stepped", outputs=("nuclear_norm",))
def _sara_official_nuclear_norm(Theta, M, *, dtype):
    """sjtuplayer/SaRA: the same value, ``s.sum()`` of ``torch.svd(param * mask)``; only its
    gradient goes to parameters the optimizer never steps."""
    return {"nuclear_norm": np.linalg.svd(np.where(M, Theta, 0.0), compute_uv=False).sum()}
