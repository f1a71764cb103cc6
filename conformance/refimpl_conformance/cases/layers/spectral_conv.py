"""Conformance cases for `spectral_conv2d`, `irfft2_adjoint` and `tucker_spectral_weight`."""

from __future__ import annotations

import numpy as np

from ..._cases import Bench, ErrorCase, Known, OpCases, Sample, register

NORMS = ("backward", "ortho", "forward")

NOTES = {
    "NYQUIST": "even W: the Nyquist column is self-conjugate (c_k = 1); the adjoint's column "
    "weights 1/2/…/2/1 are wrong if it is treated as an ordinary column",
    "ODD_WIDTH": "odd W: no Nyquist column, every column but DC counts twice",
    "ALL_ROWS": "2·m1 = H: the two row blocks tile every row, the Nyquist row included",
    "ONE_ROW": "H = 1: a single row, the FFT over rows is the identity",
    "ALL_COLUMNS": "m2 = W//2 + 1: every rfft column kept, the Nyquist one included",
    "NORM": "a normalization other than the default: the adjoint's is the swapped one",
}


def _weight(rng, shape):
    return rng.standard_normal((*shape, 2)) / np.sqrt(shape[0])


# --- spectral_conv2d ---


def _conv_random(rng, B, I, O, H, W, M1, M2):  # noqa: E741 - I is the paper's C_in
    m1 = min(M1, H // 2)
    m2 = min(M2, W // 2 + 1)
    x = rng.standard_normal((B, I, H, W)) * rng.uniform(0.2, 5)
    weight = _weight(rng, (I, O, 2 * m1, m2))
    return Sample("random", (x, weight), {"norm": str(rng.choice(NORMS))})


def _conv_edges():
    rng = np.random.default_rng(11)
    x = rng.standard_normal((2, 2, 6, 8))
    return [
        Sample(
            "all rows and columns kept (2·m1 = H, m2 = W//2 + 1), W even",
            (x, _weight(rng, (2, 3, 6, 5))),
            flags=("ALL_ROWS", "ALL_COLUMNS", "NYQUIST"),
        ),
        Sample(
            "odd grid 5 x 7, all columns",
            (rng.standard_normal((1, 2, 5, 7)), _weight(rng, (2, 2, 4, 4))),
            {"norm": "ortho"},
            flags=("ODD_WIDTH", "NORM"),
        ),
        Sample(
            "W = 2: rfft has only DC and Nyquist",
            (rng.standard_normal((2, 1, 4, 2)), _weight(rng, (1, 2, 2, 2))),
            {"norm": "forward"},
            flags=("NYQUIST", "NORM"),
        ),
        Sample(
            "single DC mode m1 = m2 = 1",
            (rng.standard_normal((3, 2, 4, 4)), _weight(rng, (2, 1, 2, 1))),
        ),
    ]


def _conv_errors():
    x = np.ones((1, 1, 4, 6))
    return [
        ErrorCase("2·m1 > H (overlapping row blocks)", (x, np.ones((1, 1, 6, 2, 2))), match="2·m1 <= H"),
        ErrorCase("odd mode axis", (x, np.ones((1, 1, 3, 2, 2))), match="2·m1 with m1 >= 1"),
        ErrorCase("m2 > W//2 + 1", (x, np.ones((1, 1, 2, 5, 2))), match="m2 <= W//2"),
    ]


def _conv_torch(torch, args, kwargs, cotangent):
    """The same layer with torch.fft and a complex einsum (legacy neuraloperator SpectralConv2d)."""
    x, weight = (torch.from_numpy(a).requires_grad_() for a in args)
    norm = kwargs.get("norm", "backward")
    g_y = torch.from_numpy(cotangent)
    height, width = x.shape[-2:]
    m1, m2 = weight.shape[2] // 2, weight.shape[3]

    def step():
        w = torch.view_as_complex(weight)
        x_hat = torch.fft.rfft2(x, norm=norm)
        out = torch.zeros(
            (x.shape[0], w.shape[1], height, width // 2 + 1), dtype=x_hat.dtype, device=x_hat.device
        )
        out[:, :, :m1, :m2] = torch.einsum("bixy,ioxy->boxy", x_hat[:, :, :m1, :m2], w[:, :, :m1])
        out[:, :, height - m1 :, :m2] = torch.einsum(
            "bixy,ioxy->boxy", x_hat[:, :, height - m1 :, :m2], w[:, :, m1:]
        )
        y = torch.fft.irfft2(out, s=(height, width), norm=norm)
        x.grad = weight.grad = None
        y.backward(g_y)
        return y

    return step


register(
    OpCases(
        "spectral_conv2d",
        dims={"B": (1, 3), "I": (1, 3), "O": (1, 3), "H": (1, 7), "W": (1, 8), "M1": (1, 3), "M2": (1, 4)},
        random=lambda rng, B, I, O, H, W, M1, M2: _conv_random(rng, B, I, O, max(H, 2), W, M1, M2),  # noqa: E741
        edges=_conv_edges,
        errors=_conv_errors,
        notes=NOTES,
        defaults={"norm": "backward"},
        bench=Bench(
            sizes={"B": 8, "I": 32, "O": 32, "H": 128, "W": 128, "M1": 16, "M2": 16},
            torch=_conv_torch,
            torch_label="torch.fft.rfft2 / irfft2 + complex einsum per kept block (autograd)",
            # no transcendentals; the per-mode products are small complex matmuls, the FFTs dominate
        ),
    )
)


# --- irfft2_adjoint ---


def _adjoint_random(rng, B, H, W):
    v = rng.standard_normal((B, H, W)) * rng.uniform(0.2, 5)
    return Sample("random", (v,), {"norm": str(rng.choice(NORMS))})


def _adjoint_edges():
    rng = np.random.default_rng(5)
    return [
        Sample("even W = 8 (Nyquist column)", (rng.standard_normal((2, 3, 8)),), flags=("NYQUIST",)),
        Sample("odd W = 7", (rng.standard_normal((3, 7)),), {"norm": "ortho"}, flags=("ODD_WIDTH", "NORM")),
        Sample("H = 1 row", (rng.standard_normal((1, 6)),), {"norm": "forward"}, flags=("ONE_ROW", "NORM")),
        Sample("W = 1", (rng.standard_normal((2, 4, 1)),), flags=("ODD_WIDTH",)),
        Sample("batch dims (2, 2, H, W)", (rng.standard_normal((2, 2, 4, 5)),)),
    ]


def _adjoint_torch(torch, args, kwargs, cotangent):
    """c ⊙ torch.fft.rfft2 with the swapped normalization, as real pairs (autograd)."""
    (v,) = (torch.from_numpy(a).requires_grad_() for a in args)
    swapped = {"backward": "forward", "ortho": "ortho", "forward": "backward"}[kwargs.get("norm", "backward")]
    g_u = torch.from_numpy(cotangent)
    width = v.shape[-1]
    c = torch.full((width // 2 + 1,), 2.0, dtype=v.dtype)
    c[0] = 1.0
    if width % 2 == 0:
        c[-1] = 1.0

    def step():
        u = torch.view_as_real(torch.fft.rfft2(v, norm=swapped) * c)
        v.grad = None
        u.backward(g_u)
        return u

    return step


register(
    OpCases(
        "irfft2_adjoint",
        dims={"B": (1, 3), "H": (1, 6), "W": (1, 9)},
        random=_adjoint_random,
        edges=_adjoint_edges,
        notes=NOTES,
        defaults={"norm": "backward"},
        bench=Bench(
            sizes={"B": 32, "H": 256, "W": 256},
            torch=_adjoint_torch,
            torch_label="c ⊙ torch.fft.rfft2(norm=swapped), view_as_real (autograd)",
        ),
    )
)


# --- tucker_spectral_weight ---

TUCKER_NOTES = {
    "RANK_ONE": "every rank 1: a rank-one tensor, each cotangent a single column",
    "OVERCOMPLETE": "ranks larger than the sizes (legal, not unique): the projections grow the core side",
    "SQUARE": "ranks equal to the sizes: no compression, every factor square",
    "FLOAT_PAIRS": "mixed signs and scales on Re and Im: a swapped or unconjugated factor shows",
}


def _tucker_args(rng, I, O, K1, M2, R1, R2, R3, R4, scale=1.0):  # noqa: E741 - I is C_in
    def pairs(*shape):
        return rng.standard_normal((*shape, 2)) * scale

    return (pairs(R1, R2, R3, R4), pairs(I, R1), pairs(O, R2), pairs(K1, R3), pairs(M2, R4))


def _tucker_random(rng, I, O, K1, M2, R1, R2, R3, R4):  # noqa: E741
    return Sample("random", _tucker_args(rng, I, O, K1, M2, R1, R2, R3, R4, scale=rng.uniform(0.3, 3)))


def _tucker_edges():
    rng = np.random.default_rng(23)
    core, u_in, u_out, u_kx, u_ky = _tucker_args(rng, 3, 2, 4, 3, 2, 2, 2, 2)
    return [
        Sample("all ranks 1", _tucker_args(rng, 2, 3, 4, 2, 1, 1, 1, 1), flags=("RANK_ONE",)),
        Sample(
            "ranks above the sizes (overcomplete)",
            _tucker_args(rng, 2, 1, 2, 1, 3, 2, 4, 2),
            flags=("OVERCOMPLETE",),
        ),
        Sample("ranks equal to the sizes", _tucker_args(rng, 2, 2, 2, 3, 2, 2, 2, 3), flags=("SQUARE",)),
        Sample(
            "purely imaginary factors, real core ×1e3",
            (core * [1e3, 0.0], u_in * [0.0, 1.0], u_out * [0.0, 1.0], u_kx, u_ky * [0.0, 1.0]),
            flags=("FLOAT_PAIRS",),
        ),
    ]


def _tucker_known():
    # W[i, 0, k, 0] = G·U_in[i]·U_out·U_kx[k]·U_ky with G = 1 + i, U_in = (1, i), U_out = 2,
    # U_kx = (1, −1), U_ky = 1; the cotangent is 1 at W[0, 0, 0, 0] only, so
    # Ḡ = conj(U_in[0]·U_out·U_kx[0]·U_ky) = 2, Ū_in[0] = conj(G·U_out·U_kx[0]·U_ky) = 2 − 2i,
    # Ū_out = conj(G·U_in[0]·U_kx[0]·U_ky) = 1 − i, Ū_kx[0] = 2 − 2i, Ū_ky = 2 − 2i.
    core = np.array([1.0, 1.0]).reshape(1, 1, 1, 1, 2)
    u_in = np.array([[[1.0, 0.0]], [[0.0, 1.0]]])
    u_out = np.array([[[2.0, 0.0]]])
    u_kx = np.array([[[1.0, 0.0]], [[-1.0, 0.0]]])
    u_ky = np.array([[[1.0, 0.0]]])
    cotangent = np.zeros((2, 1, 2, 1, 2))
    cotangent[0, 0, 0, 0, 0] = 1.0
    weight = np.array([[[2.0, 2.0], [-2.0, -2.0]], [[-2.0, 2.0], [2.0, -2.0]]]).reshape(2, 1, 2, 1, 2)
    return [
        Known(
            "rank-one complex Tucker by hand",
            (core, u_in, u_out, u_kx, u_ky),
            values={
                "weight": weight,
                "cotangent of 'core'": np.array([2.0, 0.0]).reshape(1, 1, 1, 1, 2),
                "cotangent of 'u_in'": [[[2.0, -2.0]], [[0.0, 0.0]]],
                "cotangent of 'u_out'": [[[1.0, -1.0]]],
                "cotangent of 'u_kx'": [[[2.0, -2.0]], [[0.0, 0.0]]],
                "cotangent of 'u_ky'": [[[2.0, -2.0]]],
            },
            source="hand computation (mode products of a rank-one complex Tucker tensor)",
            cotangent=cotangent,
        )
    ]


def _tucker_torch(torch, args, kwargs, cotangent):
    """Complex tensors (view_as_complex) and four mode products with torch.tensordot (autograd):
    tensorly's tucker_to_tensor, as tltorch's ComplexTucker evaluates it."""
    leaves = [torch.from_numpy(a).requires_grad_() for a in args]
    g_w = torch.from_numpy(cotangent)

    def step():
        g, *factors = (torch.view_as_complex(a) for a in leaves)
        w = g
        for mode in (3, 2, 1, 0):
            w = torch.movedim(torch.tensordot(factors[mode], w, dims=([1], [mode])), 0, mode)
        weight = torch.view_as_real(w)
        for leaf in leaves:
            leaf.grad = None
        weight.backward(g_w)
        return weight

    return step


def _tucker_blas(args, kwargs):
    """The forward's four complex mode products with NumPy's tensordot (BLAS)."""
    g, *factors = (a[..., 0] + 1j * a[..., 1] for a in args)

    def step():
        w = g
        for mode in (3, 2, 1, 0):
            w = np.moveaxis(np.tensordot(factors[mode], w, axes=(1, mode)), 0, mode)
        return w

    return step


register(
    OpCases(
        "tucker_spectral_weight",
        dims={
            "I": (1, 4),
            "O": (1, 4),
            "K1": (1, 4),
            "M2": (1, 3),
            "R1": (1, 3),
            "R2": (1, 3),
            "R3": (1, 3),
            "R4": (1, 2),
        },
        random=_tucker_random,
        edges=_tucker_edges,
        known=_tucker_known,
        notes=TUCKER_NOTES,
        defaults={},
        bench=Bench(
            # a TFNO layer: 64 channels, 2·m1 = 32 rows, m2 = 16 columns, ranks about half
            sizes={"I": 64, "O": 64, "K1": 32, "M2": 16, "R1": 32, "R2": 32, "R3": 16, "R4": 8},
            torch=_tucker_torch,
            torch_label="view_as_complex + torch.tensordot mode products (autograd), view_as_real",
            blas=_tucker_blas,
        ),
    )
)
