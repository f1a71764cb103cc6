"""Conformance cases for `sso_surrogate`."""

from __future__ import annotations

import numpy as np

from ..._cases import Bench, ErrorCase, Known, OpCases, Sample, register

NOTES = {
    "AT_ANCHOR": "z = z_t: g_t = ℓ(z_t) and ∇g_t = ∇ℓ(z_t) (the proximal term and its gradient vanish)",
    "OFFSET": "z, z_t ≈ 1e4 with O(1) differences: d = z − z_t is formed first; expanding "
    "‖z‖² − 2⟨z, z_t⟩ + ‖z_t‖² cancels",
    "CODE_ETA": "form='code' at the official eta = 1e3: eta is an INVERSE step (∇ℓ·z/η_c); "
    "a port that multiplies by eta, or reads it as the paper's η, is off by 1e6 or more",
    "SMALL_STEP": "η = 1e-4: the proximal term dominates (d/η), the linear term is a small correction",
}


CODE_DEFAULT = {"eta": 1e3, "form": "code"}  # SGD_FMDOpt's default eta (an inverse step)


def _triple(rng, n, k, scale):
    z_t = rng.standard_normal((n, k)) * scale
    z = z_t + rng.standard_normal((n, k)) * scale * float(rng.choice([0.01, 0.3, 1.0]))
    grad_t = rng.standard_normal((n, k)) * float(rng.choice([1e-3, 0.1, 1.0, 10.0]))
    return z, z_t, grad_t


def _random(rng, n, k):
    z, z_t, grad_t = _triple(rng, n, k, float(rng.choice([0.1, 1.0, 20.0])))
    if rng.random() < 0.5:
        kwargs = {"eta": float(10 ** rng.uniform(-3, 1)), "form": "paper"}
        if rng.random() < 0.5:
            kwargs["loss_t"] = float(rng.uniform(0, 5))
    else:
        kwargs = {"eta": float(rng.choice([1e3, 10 ** rng.uniform(-1, 4)])), "form": "code"}
    return Sample("random", (z, z_t, grad_t), kwargs)


def _edges():
    rng = np.random.default_rng(134)
    z, z_t, grad_t = _triple(rng, 5, 7, 1.0)
    return [
        Sample(
            "z = z_t (paper)",
            (z_t.copy(), z_t, grad_t),
            {"eta": 0.3, "loss_t": 2.5},
            flags=("AT_ANCHOR",),
            comment="value 2.5 exactly, gradient ∇ℓ(z_t)",
        ),
        Sample("z = z_t (code)", (z_t.copy(), z_t, grad_t), dict(CODE_DEFAULT), flags=("AT_ANCHOR",)),
        Sample("official eta = 1e3, code form", (z, z_t, grad_t), dict(CODE_DEFAULT), flags=("CODE_ETA",)),
        Sample("η = 1e-4, paper form", (z, z_t, grad_t), {"eta": 1e-4}, flags=("SMALL_STEP",)),
        Sample(
            "offset 1e4",
            (z + 1e4, z_t + 1e4, grad_t),
            {"eta": 0.5},
            flags=("OFFSET",),
            dtypes=("float64",),
            comment="float32 rounds 1e4 + O(1) to 1e-3: the inputs themselves lose digits",
        ),
        Sample("one entry", (np.array([[1.5]]), np.array([[0.5]]), np.array([[-2.0]])), {"eta": 2.0}),
    ]


def _known():
    z, z_t, grad_t = np.array([[1.0, 2.0]]), np.zeros((1, 2)), np.ones((1, 2))
    return [
        Known(
            "paper: ℓ(z_t) = 1, ∇ℓ = 1, z − z_t = [1, 2], η = 0.5",
            (z, z_t, grad_t),
            {"eta": 0.5, "loss_t": 1.0},
            values={"surrogate": 1.0 + 3.0 + 5.0, "cotangent of 'z'": [[1.0 + 2.0, 1.0 + 4.0]]},
            source="by hand: 1 + ⟨1, d⟩ + ‖d‖²/(2η); ∇ = 1 + d/η",
        ),
        Known(
            "code: η_c = 0.5, mean over 2 entries",
            (z, z_t, grad_t),
            {"eta": 0.5, "form": "code"},
            values={"surrogate": 5.5, "cotangent of 'z'": [[(2.0 + 2.0) / 2, (2.0 + 4.0) / 2]]},
            source="by hand: mean(1/0.5 + 1, 2/0.5 + 4); ∇ = (1/η_c + 2d)/2",
        ),
    ]


def _errors():
    z = np.ones((2, 3))
    return [
        ErrorCase(
            "loss_t with form='code'",
            (z, z, z),
            {"eta": 1e3, "form": "code", "loss_t": 1.0},
            match="drops the constant",
        )
    ]


def _bench_sample(rng, rows, cols):
    z_t = rng.standard_normal((rows, cols))
    z = z_t + 0.1 * rng.standard_normal((rows, cols))
    return Sample("bench", (z, z_t, rng.standard_normal((rows, cols))), {"eta": 0.5})


def _sso_torch(torch, args, kwargs, cotangent):
    """The surrogate on tensors (z_t, ∇ℓ detached constants); autograd backward."""
    z = torch.from_numpy(args[0]).requires_grad_()
    z_t, grad_t = (torch.from_numpy(a) for a in args[1:])
    g = torch.from_numpy(np.asarray(cotangent))
    eta, form, loss_t = kwargs["eta"], kwargs.get("form", "paper"), kwargs.get("loss_t")

    def step():
        z.grad = None
        d = z - z_t
        if form == "paper":
            value = (grad_t * d).sum() + (d * d).sum() / (2 * eta)
            if loss_t is not None:
                value = value + loss_t
        else:  # the official `(dlt_dft*target / eta + (target - target_t).pow(2)).mean()`
            value = (grad_t * z / eta + d.pow(2)).mean()
        value.backward(g)
        return value

    return step


register(
    OpCases(
        "sso_surrogate",
        dims={"n": (1, 6), "k": (1, 8)},
        random=_random,
        edges=_edges,
        errors=_errors,
        known=_known,
        defaults={"loss_t": None, "form": "paper"},
        notes=NOTES,
        bench=Bench(
            make=_bench_sample,
            torch=_sso_torch,
            torch_label="d = z − z_t; (∇ℓ·d).sum() + (d·d).sum()/(2η) (paper form); autograd backward",
        ),
    )
)
