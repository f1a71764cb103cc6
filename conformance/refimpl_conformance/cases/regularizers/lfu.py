"""Conformance cases for `lfu_normalized_ascent_step` and `lfu_consistency_loss` (LfU)."""

from __future__ import annotations

import numpy as np

from ..._cases import Bench, ErrorCase, Known, OpCases, Sample, register

NOTES = {
    "HUGE_GRADIENT": "gradient entries 1e200: Σg² overflows float64, the scaled norm does not",
    "TINY_GRADIENT": "gradient entries 1e-200: Σg² underflows to 0, the scaled norm does not",
    "ONE_ENTRY": "P = 1: the step is ±α",
    "NO_VALID_TOKEN": "mask all False: the loss is 0 and both cotangents are 0 (no 0/0)",
    "EQUAL_STATES": "h = h_aux: loss 0, zero gradient",
    "OFFSET": "hidden states ~1e4 that differ by O(1e-2): h_aux − h is formed before squaring",
    "MASKED": "a mask with gaps: masked tokens get no gradient and do not count in n",
    "ONE_TOKEN": "N = 1, D = 1",
}


# ---------------------------------------------------------------- lfu_normalized_ascent_step


def _step_random(rng, P):  # noqa: N803
    scale = float(rng.choice([0.02, 1.0, 30.0]))
    theta = rng.standard_normal(P) * scale
    grad = rng.standard_normal(P) * float(rng.choice([1e-3, 1.0, 1e3]))
    return Sample("random", (theta, grad), {"alpha": float(rng.choice([0.1, 1.0, 0.01]))})


def _step_edges():
    rng = np.random.default_rng(2)
    theta = rng.standard_normal(6)
    grad = rng.standard_normal(6)
    return [
        Sample("gradient 1e200", (theta, grad * 1e200), {}, flags=("HUGE_GRADIENT",), dtypes=("float64",)),
        Sample("gradient 1e-200", (theta, grad * 1e-200), {}, flags=("TINY_GRADIENT",), dtypes=("float64",)),
        Sample("gradient 1e30 (float32 squares overflow)", (theta, grad * 1e30), {"alpha": 0.5}),
        Sample("one entry", (np.array([2.0]), np.array([-7.0])), {"alpha": 0.25}, flags=("ONE_ENTRY",)),
        Sample("sparse gradient", (theta, np.array([0.0, 0.0, 3.0, 0.0, 0.0, 0.0])), {"alpha": 2.0}),
    ]


def _step_known():
    return [
        Known(
            "θ = 0, g = (3, 4), α = 0.5",
            (np.zeros(2), np.array([3.0, 4.0])),
            {"alpha": 0.5},
            values={"theta_aux": [0.3, 0.4]},
            source="by hand: ‖g‖ = 5, θ + α g/‖g‖",
        ),
        Known(
            "θ = (1, 1), g = (0, −2), default α",
            (np.ones(2), np.array([0.0, -2.0])),
            values={"theta_aux": [1.0, 0.9]},
            source="by hand: α = 0.1 (official run scripts), g/‖g‖ = (0, −1)",
        ),
    ]


def _step_errors():
    return [
        ErrorCase("zero gradient", (np.ones(3), np.zeros(3)), {"alpha": 0.1}, match="nonzero gradient"),
    ]


def _step_bench(rng, rows, cols):
    return Sample("bench", (rng.standard_normal(rows * cols) * 0.02, rng.standard_normal(rows * cols)), {})


def _step_torch(torch, args, kwargs, cotangent):
    """θ + α g/‖g‖ with torch.linalg.vector_norm; no backward (a stop-gradient update)."""
    theta, grad = torch.from_numpy(args[0]), torch.from_numpy(args[1])
    alpha = kwargs.get("alpha", 0.1)

    def step():
        return theta + alpha * grad / torch.linalg.vector_norm(grad)

    return step


register(
    OpCases(
        "lfu_normalized_ascent_step",
        dims={"P": (1, 12)},
        random=_step_random,
        edges=_step_edges,
        errors=_step_errors,
        known=_step_known,
        notes=NOTES,
        defaults={"alpha": 0.1},
        bench=Bench(
            make=_step_bench,
            torch=_step_torch,
            torch_label="θ + α·g/torch.linalg.vector_norm(g) (forward only)",
        ),
    )
)


# ---------------------------------------------------------------- lfu_consistency_loss


def _loss_random(rng, L, N, D):  # noqa: N803
    scale = float(rng.choice([0.1, 1.0, 20.0]))
    hidden = rng.standard_normal((L, N, D)) * scale
    hidden_aux = hidden + rng.standard_normal((L, N, D)) * scale * float(rng.choice([0.01, 0.3, 1.0]))
    mask = None
    if rng.random() < 0.5:
        mask = rng.random(N) < 0.7
        mask[rng.integers(N)] = True
    kwargs = {"lam": float(rng.choice([5.0, 0.1, 1.0])), "layer_reduction": str(rng.choice(["sum", "mean"]))}
    return Sample("random", (hidden, hidden_aux, mask), kwargs)


def _loss_edges():
    rng = np.random.default_rng(8)
    hidden = rng.standard_normal((3, 5, 4))
    hidden_aux = hidden + 0.2 * rng.standard_normal((3, 5, 4))
    return [
        Sample(
            "mask all False",
            (hidden, hidden_aux, np.zeros(5, dtype=bool)),
            {"lam": 5.0},
            flags=("NO_VALID_TOKEN",),
        ),
        Sample("h = h_aux", (hidden, hidden.copy(), None), {"lam": 5.0}, flags=("EQUAL_STATES",)),
        Sample(
            "states ~1e4",
            (hidden + 1e4, hidden_aux + 1e4, None),
            {"lam": 0.1, "layer_reduction": "mean"},
            flags=("OFFSET",),
            dtypes=("float64",),
            fd_step=1e-10,
            comment="float32 holds 1e4 to ~1e-3: the differences lose their digits there; the FD step "
            "is 1e-6 absolute",
        ),
        Sample(
            "mask with gaps",
            (hidden, hidden_aux, np.array([True, False, True, False, False])),
            {"lam": 1.0},
            flags=("MASKED",),
        ),
        Sample(
            "one token, one feature",
            (hidden[:, :1, :1], hidden_aux[:, :1, :1], None),
            {"lam": 2.0},
            flags=("ONE_TOKEN",),
        ),
    ]


def _loss_known():
    hidden = np.zeros((2, 2, 1))
    hidden_aux = np.array([[[1.0], [3.0]], [[2.0], [0.0]]])
    return [
        Known(
            "two layers, two tokens, sum",
            (hidden, hidden_aux, None),
            {"lam": 1.0},
            values={
                "loss": (1 + 9) / 2 + (4 + 0) / 2,
                "cotangent of 'hidden_aux'": [[[1.0], [3.0]], [[2.0], [0.0]]],
                "cotangent of 'hidden'": [[[-1.0], [-3.0]], [[-2.0], [0.0]]],
            },
            source="by hand: MSE_1 = 5, MSE_2 = 2; ∂/∂h_aux = 2(h_aux − h)/(n·D) = (h_aux − h)",
        ),
        Known(
            "masked second token, mean over layers, λ = 5",
            (hidden, hidden_aux, np.array([True, False])),
            {"lam": 5.0, "layer_reduction": "mean"},
            values={
                "loss": 5.0 * (1.0 + 4.0) / 2,
                "cotangent of 'hidden_aux'": [[[5.0], [0.0]], [[10.0], [0.0]]],
            },
            source="by hand: one valid token: MSE_1 = 1, MSE_2 = 4, mean 2.5; ∂ = λ(1/2)·2(h_aux − h)/1",
        ),
    ]


def _loss_bench(rng, rows, cols):
    layers = 8
    tokens = max(1, rows // layers)
    hidden = rng.standard_normal((layers, tokens, cols)).astype(np.float64)
    hidden_aux = hidden + 0.05 * rng.standard_normal((layers, tokens, cols))
    mask = rng.random(tokens) < 0.8
    return Sample("bench", (hidden, hidden_aux, mask), {"lam": 5.0})


def _loss_torch(torch, args, kwargs, cotangent):
    """Per layer F.mse_loss(h_aux[l][mask], h[l][mask]), summed (or averaged), × λ; autograd for both."""
    F = torch.nn.functional
    hidden = torch.from_numpy(args[0]).requires_grad_()
    hidden_aux = torch.from_numpy(args[1]).requires_grad_()
    mask = torch.ones(args[0].shape[1], dtype=torch.bool) if args[2] is None else torch.from_numpy(args[2])
    g = torch.from_numpy(np.asarray(cotangent))
    lam, reduction = kwargs["lam"], kwargs.get("layer_reduction", "sum")

    def step():
        hidden.grad = hidden_aux.grad = None
        terms = torch.stack(
            [F.mse_loss(hidden_aux[l][mask], hidden[l][mask]) for l in range(hidden.shape[0])]
        )
        loss = lam * (terms.sum() if reduction == "sum" else terms.mean())
        loss.backward(g)
        return loss

    return step


register(
    OpCases(
        "lfu_consistency_loss",
        dims={"L": (1, 4), "N": (1, 6), "D": (1, 5)},
        random=_loss_random,
        edges=_loss_edges,
        known=_loss_known,
        notes=NOTES,
        defaults={"mask": None, "layer_reduction": "sum"},
        bench=Bench(
            make=_loss_bench,
            torch=_loss_torch,
            torch_label="per layer F.mse_loss(h_aux[l][mask], h[l][mask]), summed, × λ; autograd backward "
            "for both states",
        ),
    )
)
