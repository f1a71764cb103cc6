"""Conformance cases for `set2set_pooling` and `order_search_loss`."""

from __future__ import annotations

import numpy as np

from ..._cases import Bench, ErrorCase, OpCases, Sample, register

NOTES = {
    "EMPTY_SET": "a set with no memory: r = 0 (a softmax over nothing must not give NaN)",
    "SINGLETON": "a one-element set: a = 1, ē = 0, the readout is the memory itself",
    "LARGE_SCORES": "attention scores ~±50: an unshifted exp overflows float32",
    "UNSORTED_INDEX": "memories of different sets interleaved: sets are gathered by index, not by runs",
    "TIES": "tied maxima: the gradient goes to the first maximal candidate only",
    "LARGE_VALUES": "log-likelihoods ~−1e4: the loss is the value itself, no cancellation",
}


def _lstm_weights(rng, d, scale):
    return (
        scale * rng.standard_normal((4 * d, 2 * d)),
        scale * rng.standard_normal((4 * d, d)),
        scale * rng.standard_normal(4 * d),
        scale * rng.standard_normal(4 * d),
    )


def _random(rng, N, d, S):
    S = min(S, N)  # num_sets ≤ N (the op's rule)
    memories = rng.standard_normal((N, d)) * rng.uniform(0.3, 2.0)
    set_index = rng.integers(0, S, size=N)
    weights = _lstm_weights(rng, d, rng.uniform(0.2, 1.0))
    steps = int(rng.integers(1, 4))
    return Sample("random", (memories, set_index, *weights), {"num_sets": S, "processing_steps": steps})


def _edges():
    rng = np.random.default_rng(3)
    d = 3
    weights = _lstm_weights(rng, d, 0.5)
    memories = rng.standard_normal((6, d))
    large = 8.0 * rng.standard_normal((5, d))
    big_weights = _lstm_weights(rng, d, 3.0)
    return [
        Sample(
            "set 1 of 3 empty",
            (memories, np.array([0, 2, 0, 2, 2, 0]), *weights),
            {"num_sets": 3, "processing_steps": 2},
            flags=("EMPTY_SET", "UNSORTED_INDEX"),
        ),
        Sample(
            "singleton sets",
            (memories[:3], np.array([2, 0, 1]), *weights),
            {"num_sets": 3, "processing_steps": 3},
            flags=("SINGLETON",),
        ),
        Sample(
            "large attention scores",
            (large, np.array([0, 1, 0, 1, 0]), *big_weights),
            {"num_sets": 2, "processing_steps": 2},
            flags=("LARGE_SCORES",),
            comment="|e| up to ~50 with saturated gates; the max shift keeps exp ≤ 1",
        ),
        Sample(
            "one set, T = 5",
            (memories, np.zeros(6, dtype=np.int64), *weights),
            {"num_sets": 1, "processing_steps": 5},
        ),
    ]


def _errors():
    d = 2
    memories = np.ones((3, d))
    index = np.array([0, 1, 0])
    w_ih, w_hh, b = np.ones((4 * d, 2 * d)), np.ones((4 * d, d)), np.ones(4 * d)
    return [
        ErrorCase(
            "set index ≥ num_sets",
            (memories, np.array([0, 2, 0]), w_ih, w_hh, b, b),
            {"num_sets": 2, "processing_steps": 1},
            match="below num_sets",
        ),
        ErrorCase(
            "num_sets > N",
            (memories, index, w_ih, w_hh, b, b),
            {"num_sets": 4, "processing_steps": 1},
            match="at most N",
        ),
        ErrorCase(
            "w_ih not (4d, 2d)",
            (memories, index, np.ones((4 * d, d)), np.ones((4 * d, d)), b, b),
            {"num_sets": 2, "processing_steps": 1},
            match="4d, 2d",
        ),
    ]


def _make_set2set(rng, rows, cols):
    """``rows`` memories of width d = cols/16 in rows/16 sets, T = 3 (the LSTM is 4d × 3d: at
    d = cols its products would dwarf the attention being timed)."""
    sets = max(1, rows // 16)
    d = max(1, cols // 16)
    memories = rng.standard_normal((rows, d))
    weights = _lstm_weights(rng, d, 1.0 / np.sqrt(d))
    return Sample(
        "bench",
        (memories, rng.integers(0, sets, size=rows), *weights),
        {"num_sets": sets, "processing_steps": 3},
    )


def _set2set_torch(torch, args, kwargs, cotangent):
    """PyG's Set2Set written out: torch.nn.LSTM(2d, d), a scatter softmax, autograd."""
    memories, set_index, w_ih, w_hh, b_ih, b_hh = args
    num_sets, steps = kwargs["num_sets"], kwargs["processing_steps"]
    d = memories.shape[1]
    x = torch.from_numpy(memories).requires_grad_()
    index = torch.from_numpy(np.asarray(set_index, dtype=np.int64))
    lstm = torch.nn.LSTM(2 * d, d, dtype=x.dtype)
    with torch.no_grad():
        for name, value in (
            ("weight_ih_l0", w_ih),
            ("weight_hh_l0", w_hh),
            ("bias_ih_l0", b_ih),
            ("bias_hh_l0", b_hh),
        ):
            getattr(lstm, name).copy_(torch.from_numpy(value))
    g_out = torch.from_numpy(cotangent)
    expand = index[:, None].expand(-1, d)

    def step():
        x.grad = None
        lstm.zero_grad()
        h = (x.new_zeros((1, num_sets, d)), x.new_zeros((1, num_sets, d)))
        q_star = x.new_zeros((num_sets, 2 * d))
        for _ in range(steps):
            q, h = lstm(q_star[None], h)
            q = q[0]
            e = (x * q[index]).sum(dim=-1)
            shift = torch.full((num_sets,), -torch.inf, dtype=x.dtype).scatter_reduce(
                0, index, e.detach(), "amax"
            )
            w = (e - shift[index]).exp()
            total = torch.zeros(num_sets, dtype=x.dtype).index_add(0, index, w)
            a = w / total[index]
            r = torch.zeros((num_sets, d), dtype=x.dtype).scatter_add(0, expand, a[:, None] * x)
            q_star = torch.cat([q, r], dim=-1)
        q_star.backward(g_out)
        return q_star

    return step


register(
    OpCases(
        "set2set_pooling",
        dims={"N": (1, 9), "d": (1, 4), "S": (1, 4)},
        random=_random,
        edges=_edges,
        errors=_errors,
        notes=NOTES,
        bench=Bench(
            make=_make_set2set,
            torch=_set2set_torch,
            torch_label="PyG Set2Set written out: torch.nn.LSTM(2d, d) + scatter softmax, autograd",
            # per step: 5 gate nonlinearities per hidden unit, one exp per memory (forward)
            transcendentals=lambda args, kwargs: (
                kwargs["processing_steps"] * (5 * kwargs["num_sets"] * args[0].shape[1] + args[0].shape[0])
            ),
        ),
    )
)


def _random_orders(rng, B, K):
    return Sample("random", (rng.standard_normal((B, K)) * rng.uniform(0.5, 20) - rng.uniform(0, 50),))


def _order_edges():
    return [
        Sample(
            "tied maxima",
            (np.array([[-1.0, -1.0, -3.0], [-2.0, -0.5, -0.5]]),),
            flags=("TIES",),
            fd=False,
            comment="max is not differentiable at a tie; the op's subgradient picks the first",
        ),
        Sample("one candidate order", (np.array([[-4.0], [-0.25]]),)),
        Sample("log-likelihoods ~−1e4", (-1e4 + np.array([[0.5, -0.25, 1.0]]),), flags=("LARGE_VALUES",)),
    ]


def _order_torch(torch, args, kwargs, cotangent):
    """``−max`` over the last axis, autograd."""
    ll = torch.from_numpy(args[0]).requires_grad_()
    g_loss = torch.from_numpy(cotangent)

    def step():
        ll.grad = None
        loss = -ll.max(dim=1).values
        loss.backward(g_loss)
        return loss

    return step


register(
    OpCases(
        "order_search_loss",
        dims={"B": (1, 6), "K": (1, 8)},
        random=_random_orders,
        edges=_order_edges,
        notes=NOTES,
        bench=Bench(
            sizes={"B": "rows", "K": "cols"},
            torch=_order_torch,
            torch_label="-torch.max(ll, dim=1).values, autograd",
        ),
    )
)
