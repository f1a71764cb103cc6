"""Conformance cases for `topk_moe_routing` and `switch_load_balancing_loss`."""

from __future__ import annotations

import math

import numpy as np

from ..._cases import Bench, ErrorCase, Known, OpCases, Sample, register

NOTES = {
    "TIES": "equal gate logits: the LOWEST expert index wins (tf.math.top_k); a kink, so no FD",
    "OVERFLOW": "more tokens than slots: the later tokens' assignments are dropped, in token order",
    "NO_SLOTS": "capacity ⌊T·cf·k/E⌋ = 0: every assignment dropped, y = 0 and every gradient 0",
    "QUIRK": "capacity_quirk: pos < C, one slot fewer per expert (the official Keras-Switch code)",
    "ALL_EXPERTS": "k = E: every expert selected; renormalized gates are p itself",
    "LARGE_LOGITS": "gate logits ±500: softmax must subtract the row max",
    "UNIFORM": "a uniform router: f = P = 1/E, the loss is λ exactly",
}


def _gate_logits(rng, num_tokens, num_experts):
    """Logits whose entries in a row differ by at least ~0.4·gap: the top-k is the same in
    float32 and stays put under a finite-difference step."""
    gap = float(rng.choice([0.5, 2.0]))
    ranks = np.argsort(rng.random((num_tokens, num_experts)), axis=-1).astype(float)
    return gap * (ranks + rng.uniform(-0.3, 0.3, size=ranks.shape)) + float(rng.choice([0.0, -3.0]))


def _routing_random(rng, T, E, d):  # noqa: N803
    z = _gate_logits(rng, T, E)
    outputs = rng.standard_normal((T, E, d))
    capacity_factor = [None, None, 0.5, 1.0, 1.25, 2.0][int(rng.integers(0, 6))]
    kwargs = {
        "k": int(rng.integers(1, E + 1)),
        "capacity_factor": capacity_factor,
        "renormalize": bool(rng.integers(0, 2)),
        "capacity_quirk": capacity_factor is not None and bool(rng.integers(0, 2)),
    }
    return Sample("random", (z, outputs), kwargs)


def _overflow_inputs():
    # 6 tokens, 2 experts; tokens 0, 1, 2, 4, 5 prefer expert 0
    z = np.array([[1.0, 0.0], [2.0, 0.5], [0.3, -0.4], [-1.0, 1.0], [0.8, 0.0], [1.5, -0.5]])
    outputs = np.arange(24, dtype=float).reshape(6, 2, 2) / 10.0 - 1.0
    return z, outputs


def _routing_edges():
    rng = np.random.default_rng(11)
    z_overflow, outputs_overflow = _overflow_inputs()
    outputs4 = rng.standard_normal((3, 4, 3))
    return [
        Sample(
            "known value: p = [0.5, 0.3, 0.2], k = 2, unit outputs",
            (np.log(np.array([[0.5, 0.3, 0.2]])), np.eye(3)[None]),
            {"k": 2},
            comment="y = [0.5, 0.3, 0]",
        ),
        Sample(
            "ties: equal logits, k = 2",
            (np.zeros((3, 4)), outputs4),
            {"k": 2},
            flags=("TIES",),
            fd=False,
            comment="experts 0 and 1 win every row",
        ),
        Sample(
            "ties between the 2nd and 3rd, renormalized",
            (np.array([[3.0, 1.0, 1.0, 0.0], [0.0, 2.0, 0.0, 2.0], [1.0, 1.0, 1.0, 5.0]]), outputs4),
            {"k": 2, "renormalize": True},
            flags=("TIES",),
            fd=False,
        ),
        Sample(
            "overflow: C = 3 for expert 0, five tokens want it",
            (z_overflow, outputs_overflow),
            {"k": 1, "capacity_factor": 1.0},
            flags=("OVERFLOW",),
            comment="tokens 4 and 5 are dropped (y = 0 there)",
        ),
        Sample(
            "overflow with the official quirk: 2 slots",
            (z_overflow, outputs_overflow),
            {"k": 1, "capacity_factor": 1.0, "capacity_quirk": True},
            flags=("OVERFLOW", "QUIRK"),
        ),
        Sample(
            "overflow, k = 2, renormalized: one running count over both choices",
            (z_overflow, outputs_overflow),
            {"k": 2, "capacity_factor": 0.5, "renormalize": True},
            flags=("OVERFLOW",),
            comment="C = 3 for each expert: tokens 0..2 keep both, tokens 3..5 keep neither",
        ),
        Sample(
            "no slots: C = 0",
            (z_overflow, outputs_overflow),
            {"k": 1, "capacity_factor": 0.1},
            flags=("NO_SLOTS",),
        ),
        Sample(
            "k = E, renormalized",
            (_gate_logits(rng, 4, 3), rng.standard_normal((4, 3, 2))),
            {"k": 3, "renormalize": True},
            flags=("ALL_EXPERTS",),
        ),
        Sample(
            "gate logits ±500",
            (np.array([[500.0, -500.0, 0.0], [-500.0, 499.0, 500.0]]), rng.standard_normal((2, 3, 2))),
            {"k": 2},
            flags=("LARGE_LOGITS",),
        ),
    ]


def _routing_errors():
    z, outputs = np.zeros((2, 3)), np.zeros((2, 3, 1))
    return [
        ErrorCase("k > E", (z, outputs), {"k": 4}, match="k <= E = 3"),
        ErrorCase(
            "quirk without capacity", (z, outputs), {"k": 1, "capacity_quirk": True}, match="capacity_factor"
        ),
    ]


def _routing_known():
    z, outputs = _overflow_inputs()
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    # k = 1, cf = 1: C = ⌊6·1·1/2⌋ = 3; expert 0 is wanted by tokens 0, 1, 2, 4, 5 → 4, 5 dropped
    y = np.array(
        [
            p[t, e] * outputs[t, e] if keep else np.zeros(2)
            for t, e, keep in [
                (0, 0, True),
                (1, 0, True),
                (2, 0, True),
                (3, 1, True),
                (4, 0, False),
                (5, 0, False),
            ]
        ]
    )
    half = math.e / (1 + math.e)
    return [
        Known(
            "p = [0.5, 0.3, 0.2], k = 2, unit expert outputs",
            (np.log(np.array([[0.5, 0.3, 0.2]])), np.eye(3)[None]),
            {"k": 2},
            values={"y": [[0.5, 0.3, 0.0]]},
            source="by hand: y = Σ_{e∈S} p_e e_e",
            rtol=1e-12,
        ),
        Known(
            "renormalized: [0.5, 0.3]/0.8",
            (np.log(np.array([[0.5, 0.3, 0.2]])), np.eye(3)[None]),
            {"k": 2, "renormalize": True},
            values={"y": [[0.625, 0.375, 0.0]]},
            source="by hand",
            rtol=1e-12,
        ),
        Known(
            "capacity overflow in token order",
            (z, outputs),
            {"k": 1, "capacity_factor": 1.0},
            values={"y": y.tolist()},
            source="by hand: C = 3, the 4th and 5th assignments to expert 0 (tokens 4, 5) dropped",
            rtol=1e-12,
        ),
        Known(
            "quirk: C = 2 slots usable out of 2 → 1",
            (np.array([[1.0, 0.0], [1.0, 0.0]]), np.array([[[1.0], [0.0]], [[1.0], [0.0]]])),
            {"k": 1, "capacity_factor": 2.0, "capacity_quirk": True},
            values={"y": [[half], [0.0]]},
            source="official Router: position 2 is not < capacity 2",
            rtol=1e-12,
        ),
    ]


def _routing_torch(torch, args, kwargs, cotangent):
    """softmax, top-k and capacity masks from NumPy (constants), gates·mask, einsum; autograd."""
    from refimpl.layers.moe_routing import expert_capacity, kept_assignments, top_k_mask

    z_np, outputs_np = args
    k = kwargs["k"]
    capacity_factor = kwargs.get("capacity_factor")
    renormalize = kwargs.get("renormalize", False)
    selected_np = top_k_mask(z_np, k)
    capacity = None if capacity_factor is None else expert_capacity(*z_np.shape, k, capacity_factor)
    kept = torch.from_numpy(kept_assignments(selected_np, capacity, kwargs.get("capacity_quirk", False)))
    selected = torch.from_numpy(selected_np)
    z = torch.from_numpy(z_np).requires_grad_()
    outputs = torch.from_numpy(outputs_np).requires_grad_()
    g = torch.from_numpy(cotangent)

    def step():
        z.grad = outputs.grad = None
        p = torch.softmax(z, dim=-1)
        if renormalize:
            masked = p * selected
            p = masked / masked.sum(-1, keepdim=True)
        y = torch.einsum("te,ted->td", p * kept, outputs)
        y.backward(g)
        return y

    return step


register(
    OpCases(
        "topk_moe_routing",
        dims={"T": (1, 8), "E": (2, 6), "d": (1, 4)},
        random=_routing_random,
        edges=_routing_edges,
        errors=_routing_errors,
        known=_routing_known,
        defaults={"capacity_factor": None, "renormalize": False, "capacity_quirk": False},
        notes=NOTES,
        bench=Bench(
            sizes={"T": "rows", "E": 8, "d": "cols"},
            kwargs={"k": 2, "capacity_factor": 1.25},
            torch=_routing_torch,
            torch_label="softmax, NumPy top-k/capacity masks, einsum of p·mask and the outputs; autograd",
            transcendentals=lambda args, kwargs: args[0].size,  # one exp per gate logit
        ),
    )
)


def _loss_random(rng, T, E):  # noqa: N803
    z = _gate_logits(rng, T, E)
    kwargs = {"k": int(rng.integers(1, E + 1)), "weight": float(rng.choice([1.0, 1.0, 0.01, 3.0]))}
    return Sample("random", (z,), kwargs)


def _loss_edges():
    return [
        Sample(
            "known value: both tokens pick expert 0",
            (np.log(np.array([[0.75, 0.25], [0.75, 0.25]])),),
            comment="L = 2·(1·0.75 + 0·0.25) = 1.5",
        ),
        Sample(
            "uniform router, ties",
            (np.zeros((4, 4)),),
            {"k": 2},
            flags=("UNIFORM", "TIES"),
            fd=False,
            comment="f = [½, ½, 0, 0], P = ¼: L = 4·¼ = 1",
        ),
        Sample(
            "gate logits ±500",
            (np.array([[500.0, -500.0, 0.0], [-500.0, 499.0, 500.0]]),),
            {"weight": 0.01},
            flags=("LARGE_LOGITS",),
        ),
        Sample(
            "k = E: f = 1/E, L = λ",
            (np.array([[0.3, -1.0, 2.0], [1.0, 0.0, -0.5]]),),
            {"k": 3, "weight": 2.0},
            flags=("ALL_EXPERTS",),
            comment="Σ_e P_e = 1, so L = λ·E·(1/E) = λ and the gradient is 0",
        ),
    ]


def _loss_errors():
    return [ErrorCase("k > E", (np.zeros((2, 3)),), {"k": 4}, match="k <= E = 3")]


def _loss_known():
    # z rows p = [0.75, 0.25] and [0.25, 0.75]: f = [½, ½], P = [½, ½], L = 2·½ = 1
    z = np.log(np.array([[0.75, 0.25], [0.25, 0.75]]))
    return [
        Known(
            "both pick expert 0: L = 1.5",
            (np.log(np.array([[0.75, 0.25], [0.75, 0.25]])),),
            values={
                "loss": 1.5,
                # z̄_t = (λE/T) p_t ⊙ (f − ⟨p_t, f⟩) = 1·[0.75, 0.25] ⊙ ([1, 0] − 0.75)
                "cotangent of 'z'": [[0.1875, -0.1875], [0.1875, -0.1875]],
            },
            source="by hand",
            rtol=1e-12,
        ),
        Known(
            "balanced load: L = λ",
            (z,),
            {"weight": 0.01},
            values={"loss": 0.01, "cotangent of 'z'": [[0.0, 0.0], [0.0, 0.0]]},
            source="by hand: f = P = [½, ½]; z̄ = (λE/T)·p ⊙ (f − ⟨p, f⟩) = 0 since f is constant",
            rtol=1e-12,
            atol=1e-15,
        ),
    ]


def _loss_torch(torch, args, kwargs, cotangent):
    """softmax, f from a NumPy top-k (constant), λ·E·Σ f·mean_t p; autograd backward."""
    from refimpl.layers.moe_routing import top_k_mask

    k = kwargs.get("k", 1)
    weight = kwargs.get("weight", 1.0)
    f = torch.from_numpy(top_k_mask(args[0], k).mean(axis=0) / k).to(torch.from_numpy(args[0]).dtype)
    z = torch.from_numpy(args[0]).requires_grad_()
    g = torch.from_numpy(np.asarray(cotangent))

    def step():
        z.grad = None
        loss = weight * z.shape[1] * (f * torch.softmax(z, dim=-1).mean(0)).sum()
        loss.backward(g)
        return loss

    return step


register(
    OpCases(
        "switch_load_balancing_loss",
        dims={"T": (1, 8), "E": (2, 6)},
        random=_loss_random,
        edges=_loss_edges,
        errors=_loss_errors,
        known=_loss_known,
        defaults={"k": 1, "weight": 1.0},
        notes=NOTES,
        bench=Bench(
            sizes={"T": "rows", "E": "cols"},
            torch=_loss_torch,
            torch_label="softmax, f from a NumPy top-k, λ·E·Σ f·mean_t p; autograd backward",
            transcendentals=lambda args, kwargs: args[0].size,
        ),
    )
)
