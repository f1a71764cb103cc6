"""Conformance cases for R-AMT: `mask_tuning_weight` and `ramt_distillation_loss`."""

from __future__ import annotations

import numpy as np

from ..._cases import Bench, Known, OpCases, Sample, register

NOTES = {
    "AT_THRESHOLD": "scores exactly τ: dropped (m_real > τ keeps, m_real = τ drops)",
    "ALL_KEPT": "every score above τ (the initialization 1e-2 > 5e-3): W_eff = W, still m̄ = G ⊙ W",
    "NONE_KEPT": "every score below τ: W_eff = 0, and the scores still receive G ⊙ W",
    "SCALAR_PARAMETER": "a 0-d weight",
    "DETACHED": "detach_target=True: the usual distillation gradient (q − t)·T/B",
    "TEACHER_ONLY": "α = 1: the target is the teacher alone; both gradients agree",
    "STUDENT_ONLY": "α = 0: the target is the student's own softmax; the loss is its entropy·T²",
    "SATURATED": "logits ±60 at T = 0.5: softmax one-hot, log-sum-exp must not overflow",
    "ONE_CLASS": "K = 1: the loss is 0 and so is the gradient",
}


# -- mask_tuning_weight ------------------------------------------------------------------------
def _mask_random(rng, R, C):  # noqa: N803
    shape = [(R * C,), (R, C), (R, 1, C)][int(rng.integers(0, 3))]
    W = rng.standard_normal(shape) * float(rng.choice([0.02, 1.0]))  # noqa: N806
    threshold = float(rng.choice([5e-3, 0.0, -0.1]))
    m_real = threshold + rng.standard_normal(shape) * 1e-2
    return Sample("random", (W, m_real), {"threshold": threshold})


def _mask_edges():
    rng = np.random.default_rng(581)
    W = rng.standard_normal((3, 4))  # noqa: N806
    at_threshold = np.full((3, 4), 5e-3)
    at_threshold[0, :2] = 6e-3
    return [
        Sample(
            "known value: a score at τ is dropped",
            (np.array([[2.0, -1.0, 3.0]]), np.array([[0.01, 0.005, 0.0]])),
            {"threshold": 5e-3},
            flags=("AT_THRESHOLD",),
        ),
        Sample("scores at τ", (W, at_threshold), {"threshold": 5e-3}, flags=("AT_THRESHOLD",)),
        Sample(
            "the '1s' initialization", (W, np.full((3, 4), 1e-2)), {"threshold": 5e-3}, flags=("ALL_KEPT",)
        ),
        Sample("all dropped", (W, np.full((3, 4), -1.0)), {"threshold": 5e-3}, flags=("NONE_KEPT",)),
        Sample("0-d weight", (np.array(1.5), np.array(0.2)), {"threshold": 0.1}, flags=("SCALAR_PARAMETER",)),
    ]


def stated_mask_vjp(args, kwargs, cotangents):
    """The straight-through estimator: m̄_real = G ⊙ W, in float64."""
    W = np.asarray(args[0], dtype=np.float64)  # noqa: N806
    (g,) = (np.asarray(c, dtype=np.float64) for c in cotangents)
    return [g * W]


def _mask_known():
    return [
        Known(
            "a score at τ is dropped",
            (np.array([[2.0, -1.0, 3.0]]), np.array([[0.01, 0.005, 0.0]])),
            {"threshold": 5e-3},
            values={"w_eff": [[2.0, 0.0, 0.0]], "cotangent of 'm_real'": [[2.0, -1.0, 3.0]]},
            source="by hand: 1[m > τ] = (1, 0, 0); the STE gives G ⊙ W with G = 1",
        )
    ]


def _mask_torch(torch, args, kwargs, cotangent):
    """The Binarizer as a torch.autograd.Function (identity backward), then W ⊙ M."""
    W = torch.from_numpy(args[0])  # noqa: N806
    m_real = torch.from_numpy(args[1]).requires_grad_()
    g = torch.from_numpy(np.asarray(cotangent))
    threshold = kwargs["threshold"]

    class Binarizer(torch.autograd.Function):
        @staticmethod
        def forward(ctx, scores):
            return (scores > threshold).to(scores.dtype)

        @staticmethod
        def backward(ctx, g_mask):
            return g_mask

    def step():
        m_real.grad = None
        w_eff = W * Binarizer.apply(m_real)
        w_eff.backward(g)
        return w_eff

    return step


register(
    OpCases(
        "mask_tuning_weight",
        dims={"R": (1, 6), "C": (1, 7)},
        random=_mask_random,
        edges=_mask_edges,
        errors=lambda: [],
        known=_mask_known,
        notes=NOTES,
        defaults={},
        stated_vjp=stated_mask_vjp,
        bench=Bench(
            sizes={"R": "rows", "C": "cols"},
            torch=_mask_torch,
            torch_label="W * Binarizer.apply(m_real) (identity backward), autograd",
        ),
    )
)


# -- ramt_distillation_loss ------------------------------------------------------------------------
def _loss_random(rng, B, K):  # noqa: N803
    scale = float(rng.choice([0.3, 1.0, 5.0]))
    z_tea = rng.standard_normal((B, K)) * scale
    z_stu = z_tea + rng.standard_normal((B, K)) * float(rng.choice([0.1, 1.0]))
    kwargs = {
        "alpha": float(rng.choice([0.0, 0.3, 0.5, 1.0])),
        "temperature": float(rng.choice([0.5, 1.0, 2.0, 4.0])),
        "detach_target": bool(rng.random() < 0.3),
    }
    return Sample("random", (z_stu, z_tea), kwargs)


def _loss_edges():
    rng = np.random.default_rng(582)
    z_stu, z_tea = rng.standard_normal((4, 5)), rng.standard_normal((4, 5))
    saturated = np.where(rng.random((3, 6)) < 0.5, -60.0, 60.0)
    return [
        Sample(
            "known value: uniform logits",
            (np.zeros((1, 2)), np.zeros((1, 2))),
            {"alpha": 0.5, "temperature": 2.0},
        ),
        Sample(
            "detached target",
            (z_stu, z_tea),
            {"alpha": 0.3, "temperature": 2.0, "detach_target": True},
            flags=("DETACHED",),
        ),
        Sample("teacher only", (z_stu, z_tea), {"alpha": 1.0, "temperature": 1.0}, flags=("TEACHER_ONLY",)),
        Sample("student only", (z_stu, z_tea), {"alpha": 0.0, "temperature": 3.0}, flags=("STUDENT_ONLY",)),
        Sample(
            "saturated logits",
            (saturated, -saturated + rng.standard_normal((3, 6))),
            {"alpha": 0.5, "temperature": 0.5},
            flags=("SATURATED",),
            fd_step=1e-7,
        ),
        Sample(
            "K = 1", (z_stu[:, :1], z_tea[:, :1]), {"alpha": 0.5, "temperature": 2.0}, flags=("ONE_CLASS",)
        ),
    ]


def _loss_known():
    return [
        Known(
            "uniform logits",
            (np.zeros((1, 2)), np.zeros((1, 2))),
            {"alpha": 0.5, "temperature": 2.0},
            values={"loss": 4.0 * np.log(2.0), "cotangent of 'z_stu'": [[0.0, 0.0]]},
            source="by hand: t = q = (1/2, 1/2), L = T²·log 2; q − t = 0 and ℓ − ⟨t, ℓ⟩ = 0",
            cotangent=np.array(1.0),
            atol=1e-15,
        ),
        Known(
            "two classes, α = 0, T = 1 (the target is q itself)",
            (np.array([[np.log(3.0), 0.0]]), np.array([[0.0, 0.0]])),
            {"alpha": 0.0, "temperature": 1.0},
            values={
                "loss": -(0.75 * np.log(0.75) + 0.25 * np.log(0.25)),
                # z̄ = q ⊙ (ℓ − ⟨q, ℓ⟩), the entropy's gradient: ℓ = (log 4/3, log 4), ⟨q, ℓ⟩ = H
                "cotangent of 'z_stu'": [
                    [
                        0.75 * (np.log(4 / 3) + 0.75 * np.log(0.75) + 0.25 * np.log(0.25)),
                        0.25 * (np.log(4.0) + 0.75 * np.log(0.75) + 0.25 * np.log(0.25)),
                    ]
                ],
            },
            source="by hand: q = t = (3/4, 1/4); L = H(q); the (q − t) term vanishes",
            cotangent=np.array(1.0),
            rtol=1e-12,
        ),
    ]


def stated_loss_vjp(args, kwargs, cotangents):
    """The stated gradient, by explicit Jacobians per row in float64: through ℓ = −log q with
    ∂ℓ_k/∂z_j = (q_j − δ_kj)/T, and through t (∂t_k/∂z_j = (1 − α)(t_k δ_kj − t_k t_j)/T) unless
    detached; then the chain rule as Jᵀ products."""
    z_stu, z_tea = (np.asarray(a, dtype=np.float64) for a in args[:2])
    (g,) = (float(np.asarray(c, dtype=np.float64)) for c in cotangents)
    alpha, temperature = kwargs["alpha"], kwargs["temperature"]
    detach = kwargs.get("detach_target", False)
    batch, classes = z_stu.shape
    g_z = np.zeros_like(z_stu)
    identity = np.eye(classes)
    for i in range(batch):
        u = z_stu[i] / temperature
        q = np.exp(u - u.max()) / np.exp(u - u.max()).sum()
        v = (alpha * z_tea[i] + (1 - alpha) * z_stu[i]) / temperature
        t = np.exp(v - v.max()) / np.exp(v - v.max()).sum()
        ell = -np.log(q)
        d_ell = (np.outer(np.ones(classes), q) - identity) / temperature  # ∂ℓ_k/∂z_j
        row = d_ell.T @ t  # Σ_k t_k ∂ℓ_k/∂z
        if not detach:
            d_t = (np.diag(t) - np.outer(t, t)) * (1 - alpha) / temperature  # ∂t_k/∂z_j
            row = row + d_t.T @ ell
        g_z[i] = g * temperature**2 / batch * row
    return [g_z]


def _loss_torch(torch, args, kwargs, cotangent):
    """The trainer's KLLoss: mixed target from the live student logits, T²·batch-mean
    cross-entropy of the tempered softmaxes; autograd for z̄_stu."""
    z_stu = torch.from_numpy(args[0]).requires_grad_()
    z_tea = torch.from_numpy(args[1])
    alpha, temperature = kwargs["alpha"], kwargs["temperature"]
    g = torch.from_numpy(np.asarray(cotangent))

    def step():
        z_stu.grad = None
        mixed = alpha * z_tea + (1 - alpha) * z_stu
        if kwargs.get("detach_target", False):
            mixed = mixed.detach()
        target = torch.softmax(mixed / temperature, dim=1)
        log_q = torch.log_softmax(z_stu / temperature, dim=1)
        loss = -(target * log_q).sum(dim=1).mean() * temperature**2
        loss.backward(g)
        return loss

    return step


register(
    OpCases(
        "ramt_distillation_loss",
        dims={"B": (1, 6), "K": (1, 9)},
        random=_loss_random,
        edges=_loss_edges,
        errors=lambda: [],
        known=_loss_known,
        notes=NOTES,
        defaults={"detach_target": False},
        stated_vjp=stated_loss_vjp,
        bench=Bench(
            sizes={"B": "rows", "K": "cols"},
            kwargs={"alpha": 0.5, "temperature": 2.0},
            torch=_loss_torch,
            torch_label="softmax(mix/T)·log_softmax(z_stu/T), T²·mean, autograd (target not detached)",
            # two row softmaxes: exp of u and of the mixed logits, and the log of two row sums
            transcendentals=lambda args, kwargs: 2 * args[0].size + 2 * args[0].shape[0],
        ),
    )
)
