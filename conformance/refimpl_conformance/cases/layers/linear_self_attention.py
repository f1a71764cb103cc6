"""Conformance cases for linear self-attention, its GD construction and GD++
(`linear_self_attention`, `lsa_gd_construction`, `gd_plus_plus_layer`)."""

from __future__ import annotations

import numpy as np

from ..._cases import Bench, ErrorCase, Known, OpCases, Sample, register

NOTES = {
    "ALL_CONTEXT": "N = T: no query rows, every token is a key and a value",
    "ONE_CONTEXT": "N = 1: G = v_0 k_0ᵀ has rank one",
    "QUERIES_EXCLUDED": "rows after N must not enter G: a token there changes only its own output",
    "GD_WEIGHTS": "the construction's weights: the layer is one GD step (sparse, exact zeros)",
    "ONE_FEATURE": "D = 1: every matrix is a scalar",
    "NEGATIVE_GAMMA": "γ < 0 expands the large-curvature directions",
    "ZERO_START": "W_0 = 0: the paper's case, W_V = [[0, 0], [0, −I]]",
}


def _lsa_args(rng, B, T, D, Dk, Dv):  # noqa: N803 - dimension names as in the op's specs
    scale = 1 / np.sqrt(D)
    return (
        rng.standard_normal((B, T, D)),
        rng.standard_normal((Dk, D)) * scale,
        rng.standard_normal((Dk, D)) * scale,
        rng.standard_normal((Dv, D)) * scale,
        rng.standard_normal((D, Dv)) * scale,
    )


def _lsa_random(rng, B, T, D, Dk, Dv):  # noqa: N803
    return Sample("random", _lsa_args(rng, B, T, D, Dk, Dv), {"num_context": int(rng.integers(1, T + 1))})


def _lsa_edges():
    rng = np.random.default_rng(3)
    args = _lsa_args(rng, 2, 5, 3, 2, 4)
    x = rng.standard_normal((1, 6, 2))
    y = rng.standard_normal((1, 6, 1))
    tokens = np.concatenate([x, y], axis=-1)
    tokens[0, -1, -1] = 0.0  # the query (x_q, 0)
    W_Q = np.diag([1.0, 1.0, 0.0])
    W_V = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.5, -0.25, -1.0]])
    return [
        Sample("N = T (no query rows)", args, {"num_context": 5}, flags=("ALL_CONTEXT",)),
        Sample("N = 1", args, {"num_context": 1}, flags=("ONE_CONTEXT",)),
        Sample("N = 2 of T = 5", args, {"num_context": 2}, flags=("QUERIES_EXCLUDED",)),
        Sample(
            "GD construction weights, W_0 = [0.5, −0.25], η = 0.1, N = 5",
            (tokens, W_Q, W_Q.copy(), W_V, np.eye(3) * 0.1 / 5),
            {"num_context": 5},
            flags=("GD_WEIGHTS",),
        ),
        Sample(
            "D = D_k = D_v = 1", _lsa_args(rng, 2, 4, 1, 1, 1), {"num_context": 3}, flags=("ONE_FEATURE",)
        ),
    ]


def _context_errors(make, **kwargs):
    def errors():
        return [
            ErrorCase(
                "N > T", make(), {"num_context": 4, **kwargs}, match="at most the number of tokens T = 3"
            )
        ]

    return errors


def _lsa_known():
    # E = [[1, 2], [3, 0]], N = 1, every weight I:
    # G = e_0 e_0ᵀ = [[1, 2], [2, 4]], U = Q Gᵀ = [[5, 10], [3, 6]]
    E = np.array([[[1.0, 2.0], [3.0, 0.0]]])
    eye = np.eye(2)
    return [
        Known(
            "by hand: T = 2, N = 1, identity weights",
            (E, eye, eye, eye, eye),
            {"num_context": 1},
            values={
                "out": [[[6.0, 12.0], [6.0, 6.0]]],
                # Ē = 1: Q̄ = Ē P G = [3, 6] per row, Ḡ = Pᵀ Ēᵀ Q = [[4, 2], [4, 2]],
                # K̄ = V Ḡ = [12, 6], V̄ = K Ḡᵀ = [8, 8]; Ē_in = Ē + Q̄ (+ K̄ + V̄ on row 0)
                "cotangent of 'E'": [[[24.0, 21.0], [4.0, 7.0]]],
                "cotangent of 'W_Q'": [[12.0, 6.0], [24.0, 12.0]],
                "cotangent of 'W_K'": [[12.0, 24.0], [6.0, 12.0]],
                "cotangent of 'W_V'": [[8.0, 16.0], [8.0, 16.0]],
                "cotangent of 'P'": [[8.0, 16.0], [8.0, 16.0]],
            },
            source="computed by hand",
            rtol=1e-15,
        )
    ]


def _lsa_torch(torch, args, kwargs, cotangent):
    """The direct formula: Q = E W_Qᵀ, K, V from the context rows, out = E + Q (Vᵀ K)ᵀ Pᵀ."""
    E, W_Q, W_K, W_V, P = (torch.from_numpy(a).requires_grad_() for a in args)
    n = kwargs["num_context"]
    g = torch.from_numpy(cotangent)

    def step():
        context = E[:, :n]
        G = (context @ W_V.T).transpose(-1, -2) @ (context @ W_K.T)
        out = E + (E @ W_Q.T) @ G.transpose(-1, -2) @ P.T
        for a in (E, W_Q, W_K, W_V, P):
            a.grad = None
        out.backward(g)
        return out

    return step


def _lsa_blas(args, kwargs):
    """The fast form's token-length products: E_Nᵀ E_N and E Mᵀ forward, Ēᵀ E, Ē M and
    E_N (R + Rᵀ) backward (the rest is D × D)."""
    E = args[0]
    n = kwargs["num_context"]
    M = np.ones((E.shape[0], E.shape[2], E.shape[2]), dtype=E.dtype)
    G = np.ones_like(E)

    def step():
        context = E[:, :n]
        return (
            np.swapaxes(context, -1, -2) @ context,
            E @ M,
            np.swapaxes(G, -1, -2) @ E,
            G @ M,
            context @ M,
        )

    return step


def _lsa_bench(rng, rows, cols):
    """B = 8, T = 1024 (N = 1023 context rows and one query), D = D_k = D_v = 256."""
    return Sample("bench", _lsa_args(rng, 8, 1024, 256, 256, 256), {"num_context": 1023})


register(
    OpCases(
        "linear_self_attention",
        dims={"B": (1, 2), "T": (1, 7), "D": (1, 4), "Dk": (1, 4), "Dv": (1, 4)},
        random=_lsa_random,
        edges=_lsa_edges,
        errors=_context_errors(lambda: _lsa_args(np.random.default_rng(0), 1, 3, 2, 2, 2)),
        known=_lsa_known,
        notes=NOTES,
        defaults={},
        bench=Bench(
            make=_lsa_bench,
            torch=_lsa_torch,
            torch_label="torch: the direct formula E + (E W_Qᵀ)(Vᵀ K)ᵀ Pᵀ, autograd backward",
            blas=_lsa_blas,
        ),
    )
)


# -- lsa_gd_construction ----------------------------------------------------------------------
def _construction_random(rng, Dx, Dy):  # noqa: N803
    W_0 = rng.standard_normal((Dy, Dx))
    return Sample(
        "random",
        (W_0,),
        {"eta": float(rng.uniform(0.01, 2.0)), "num_context": int(rng.integers(1, 50))},
        fd=False,
    )


def _construction_edges():
    return [
        Sample(
            "W_0 = 0, D_x = 3, D_y = 1",
            (np.zeros((1, 3)),),
            {"eta": 1.0, "num_context": 10},
            flags=("ZERO_START",),
        ),
        Sample(
            "D_x = D_y = 1", (np.array([[-2.0]]),), {"eta": 0.5, "num_context": 1}, flags=("ONE_FEATURE",)
        ),
    ]


def _construction_known():
    return [
        Known(
            "Proposition 1: W_0 = [[2]], η = 0.5, N = 4",
            (np.array([[2.0]]),),
            {"eta": 0.5, "num_context": 4},
            values={
                "W_Q": [[1.0, 0.0], [0.0, 0.0]],
                "W_K": [[1.0, 0.0], [0.0, 0.0]],
                "W_V": [[0.0, 0.0], [2.0, -1.0]],
                "P": [[0.125, 0.0], [0.0, 0.125]],
            },
            source="arXiv:2212.07677 Proposition 1, by hand",
            rtol=0.0,
        )
    ]


register(
    OpCases(
        "lsa_gd_construction",
        dims={"Dx": (1, 4), "Dy": (1, 3)},
        random=_construction_random,
        edges=_construction_edges,
        known=_construction_known,
        notes=NOTES,
        defaults={},
    )
)


# -- gd_plus_plus_layer -----------------------------------------------------------------------
def _gdpp_random(rng, B, T, D):  # noqa: N803
    return Sample(
        "random",
        (rng.standard_normal((B, T, D)),),
        {"gamma": float(rng.uniform(-0.5, 0.5)), "num_context": int(rng.integers(1, T + 1))},
    )


def _gdpp_edges():
    rng = np.random.default_rng(5)
    X = rng.standard_normal((2, 5, 3))
    return [
        Sample("N = T", (X,), {"gamma": 0.3, "num_context": 5}, flags=("ALL_CONTEXT",)),
        Sample("N = 1", (X,), {"gamma": 0.3, "num_context": 1}, flags=("ONE_CONTEXT",)),
        Sample("γ = −0.7", (X,), {"gamma": -0.7, "num_context": 3}, flags=("NEGATIVE_GAMMA",)),
        Sample(
            "D = 1",
            (rng.standard_normal((1, 4, 1)),),
            {"gamma": 0.2, "num_context": 2},
            flags=("ONE_FEATURE",),
        ),
    ]


def _gdpp_known():
    # X = [[2, 0], [1, 1]], N = 1, γ = 1/4: C = diag(4, 0); Ȳ = 1: Ȳ − γ Ȳ C = [0, 1] per row,
    # C̄ = −γ Xᵀ Ȳ = −¼ [[3, 3], [1, 1]],
    # row 0 also + x_0 (C̄ + C̄ᵀ) = [2, 0] [[−1.5, −1], [−1, −0.5]] = [−3, −2]
    return [
        Known(
            "by hand: T = 2, N = 1, γ = 1/4",
            (np.array([[[2.0, 0.0], [1.0, 1.0]]]),),
            {"gamma": 0.25, "num_context": 1},
            values={"out": [[[0.0, 0.0], [0.0, 1.0]]], "cotangent of 'X'": [[[-3.0, -1.0], [0.0, 1.0]]]},
            source="computed by hand",
            rtol=1e-15,
        )
    ]


def _gdpp_torch(torch, args, kwargs, cotangent):
    """The direct formula: out = X − γ X (X_Nᵀ X_N / N)."""
    X = torch.from_numpy(args[0]).requires_grad_()
    n, gamma = kwargs["num_context"], kwargs["gamma"]
    g = torch.from_numpy(cotangent)

    def step():
        context = X[:, :n]
        out = X - gamma * (X @ (context.transpose(-1, -2) @ context / n))
        X.grad = None
        out.backward(g)
        return out

    return step


def _gdpp_blas(args, kwargs):
    """X_Nᵀ X_N and X C forward; Xᵀ Ȳ, Ȳ C and X_N (C̄ + C̄ᵀ) backward."""
    X = args[0]
    n = kwargs["num_context"]
    C = np.ones((X.shape[0], X.shape[2], X.shape[2]), dtype=X.dtype)
    G = np.ones_like(X)

    def step():
        context = X[:, :n]
        return np.swapaxes(context, -1, -2) @ context, X @ C, np.swapaxes(X, -1, -2) @ G, G @ C, context @ C

    return step


def _gdpp_bench(rng, rows, cols):
    """B = 8, T = 1024 (N = 1023), D = 256."""
    return Sample("bench", (rng.standard_normal((8, 1024, 256)),), {"gamma": 0.1, "num_context": 1023})


register(
    OpCases(
        "gd_plus_plus_layer",
        dims={"B": (1, 2), "T": (1, 7), "D": (1, 4)},
        random=_gdpp_random,
        edges=_gdpp_edges,
        errors=_context_errors(lambda: (np.random.default_rng(0).standard_normal((1, 3, 2)),), gamma=0.1),
        known=_gdpp_known,
        notes=NOTES,
        defaults={},
        bench=Bench(
            make=_gdpp_bench,
            torch=_gdpp_torch,
            torch_label="torch: the direct formula X − γ X (X_Nᵀ X_N / N), autograd backward",
            blas=_gdpp_blas,
        ),
    )
)
