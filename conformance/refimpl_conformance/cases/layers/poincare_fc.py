"""Conformance cases for `poincare_fc`, `poincare_beta_concat`, `poincare_conv2d`,
`poincare_relu` and `poincare_residual` (Poincaré ResNet / HNN++ layers)."""

from __future__ import annotations

import math

import numpy as np

from ..._cases import Bench, ErrorCase, OpCases, Sample, register
from ...deviations import transcribes
from .poincare import (
    BOUNDARY,
    _ball_points,
    _directions,
    _random_c,
    ball_bench_sample,
    torch_artanh_factor,
    torch_c_squared_norm,
    torch_expmap0,
    torch_mobius_add,
)

NOTES = {
    "IDENTITY_INIT": "Z = ½·eye, r = 0: poincare_fc is the identity; zero columns have ‖z_k‖ = 0",
    "ZERO_COLUMN": "‖z_k‖ = 0 (0/0 in ⟨x, z_k⟩/‖z_k‖): the guard must give v_k = 0 and finite gradients",
    "SMALL_COLUMN": "‖z_k‖ = 1e-4 or 1e-150: nothing may divide by ‖z_k‖ twice (underflow of ‖z_k‖²)",
    "BALL_BOUNDARY": "points at 1 − 1e-7 (float64) or 0.999 (float32) of the radius: λ ~ 1e7",
    "SATURATED": "√c v_k in the hundreds: sinh(√c v) overflows unless scaled; y rounds onto the boundary",
    "C_TO_ZERO": "c = 1e-10: the Euclidean limits (affine map, scaled concatenation)",
    "AT_ORIGIN": "points at the origin: λ = 2, log_0/exp_0 at their series, padding pixels",
    "BATCH_DIMS": "several leading dimensions: norms over the last axis, sums over all rows",
    "KINK": "a tangent coordinate exactly 0: ReLU's kink, finite differences are not meaningful",
    "CONV_GEOMETRY": "stride, padding and kernel size: the fold must scatter-add exactly where unfold read",
}


def _identity_Z(n_in, n_out):
    return 0.5 * np.eye(n_in, n_out), np.zeros(n_out)


# -- the PyTorch baselines: the reference's formulas (refimpl/layers/poincare*.py) in torch ops --------
# The shared maps (c‖x‖², exp_0, log_0, ⊕) are poincare.py's torch helpers. Each helper takes
# the torch module (imported by the bench only); the forward is the reference's, with its
# clamps and series switches, and autograd differentiates it.


def _below_one(dtype) -> float:
    """The largest number below 1 in ``dtype`` (poincare_fc's cap on ``c‖x‖²``)."""
    dtype = np.dtype(dtype)
    return float(np.nextafter(dtype.type(1), dtype.type(0)))


def _rows(a) -> int:
    """The number of points (rows over the last axis) of ``a``."""
    return a.size // a.shape[-1]


def _t_tangent_relu(torch, x, c, below_one):
    """``exp_0(relu(log_0(x)))`` as _tangent_relu_forward (c‖x‖² capped below 1)."""
    v = torch_artanh_factor(torch, torch.clamp(torch_c_squared_norm(x, c), max=below_one)) * x
    return torch_expmap0(torch, torch.relu(v), c)


def _t_fc(torch, x, Z, r, c, below_one):
    """poincare_fc's forward: the hyperplane distances, then y with every exp scaled by e^{−M}."""
    sqrt_c = math.sqrt(c)
    beta = 1 - torch.clamp(torch_c_squared_norm(x, c), max=below_one)
    lam = 2 / beta
    lam_minus_one = (2 - beta) / beta
    zeta = torch.linalg.vector_norm(Z, dim=0)
    z_hat = Z / torch.where(zeta > 0, zeta, torch.ones_like(zeta))
    p = x @ z_hat
    u = sqrt_c * lam * p * torch.cosh(2 * sqrt_c * r) - lam_minus_one * torch.sinh(2 * sqrt_c * r)
    s = 2 * zeta * torch.asinh(u)
    abs_s = s.abs()
    # y does not depend on M (it cancels): detached, as the reference's backward treats it
    big = torch.amax(abs_s, dim=-1, keepdim=True).detach()
    t = torch.sign(s) * torch.exp(abs_s - big) * (-torch.expm1(-2 * abs_s)) / 2  # e^{−M} sinh(s)
    scale = torch.exp(-big)
    big_q = torch.sqrt(scale * scale + torch.sum(t * t, dim=-1, keepdim=True))
    return t / (sqrt_c * (scale + big_q))


def _fc_transcendentals(rows, m):
    """One forward+backward of poincare_fc over ``rows`` points to ``m`` outputs: per output
    asinh(u_k), e^{|s_k| − M} and e^{−2|s_k|} (expm1 in the forward, reused for cosh in the
    backward); per row e^{−M}; per column cosh and sinh of 2√c r_k."""
    return 3 * rows * m + rows + 2 * m


def _fc_torch(torch, args, kwargs, cotangent):
    x, Z, r = (torch.from_numpy(a).requires_grad_() for a in args)
    c, below_one = float(kwargs.get("c", 1.0)), _below_one(args[0].dtype)
    g = torch.from_numpy(cotangent)

    def step():
        x.grad = Z.grad = r.grad = None
        y = _t_fc(torch, x, Z, r, c, below_one)
        y.backward(g)
        return y

    return step


def _fc_blas(args, kwargs):
    """The layer's products: p = x ẑ forward; ā Zᵀ (x̄) and xᵀ Ā (Z̄) backward."""
    x = args[0].reshape(-1, args[0].shape[-1])
    Z = args[1]
    g_a = np.full((x.shape[0], Z.shape[1]), 0.5, dtype=x.dtype)

    def step():
        return x @ Z, g_a @ Z.T, x.T @ g_a

    return step


# -- poincare_fc ------------------------------------------------------------------------------
def _fc_random(rng, B, n, m):
    c = _random_c(rng)
    x = _ball_points(rng, (B, n), c, rng.uniform(0, 0.95, B))
    Z = rng.standard_normal((n, m)) * rng.uniform(0.2, 1.5)
    r = 0.3 * rng.standard_normal(m)
    # float32: points up to 0.95 of the radius (λ up to ~20) amplify rounding in the x
    # cotangent; seen up to 2.3e-5 over 250 seeds, hence atol 1e-4
    return Sample("random", (x, Z, r), {"c": c})


def _fc_edges():
    rng = np.random.default_rng(21)
    n, m = 4, 3
    Z, r = rng.standard_normal((n, m)), 0.3 * rng.standard_normal(m)
    Z_square, r_square = _identity_Z(n, n)
    Z_wide, r_wide = _identity_Z(n, 6)
    x_boundary = _ball_points(rng, (3, n), 1.0, [BOUNDARY] * 3)
    Z_small = Z.copy()
    Z_small[:, 1] *= 1e-4 / np.linalg.norm(Z_small[:, 1])
    Z_tiny = Z.copy()
    Z_tiny[:, 0] *= 1e-150 / np.linalg.norm(Z_tiny[:, 0])
    Z_zero = Z.copy()
    Z_zero[:, 2] = 0.0
    Z_big = 30.0 * _directions(rng, (m, n)).T
    x_origin = _ball_points(rng, (3, n), 1.0, [0.0, 0.5, 0.0])
    return [
        Sample(
            "identity init Z = ½I, r = 0, points up to 0.9 of the radius",
            (_ball_points(rng, (4, n), 1.0, [0.0, 0.3, 0.6, 0.9]), Z_square, r_square),
            flags=("IDENTITY_INIT",),
            comment="y = x; the reference computes it to a few ulps",
        ),
        Sample(
            "identity init Z = ½I, r = 0, points at 1 − 1e-7 of the radius",
            (x_boundary, Z_square, r_square),
            flags=("IDENTITY_INIT", "BALL_BOUNDARY"),
            dtypes=("float64",),
            fd_step=5e-11,
            comment="λ ≈ 1e7 and the x-Jacobian ≈ 1e14·x xᵀ: steps must stay ≪ 1e-7",
        ),
        Sample(
            "identity init ½·eye(4, 6): y = (x, 0, 0); two zero columns",
            (_ball_points(rng, (3, n), 0.5, [0.2, 0.7, 0.95]), Z_wide, r_wide),
            {"c": 0.5},
            flags=("IDENTITY_INIT", "ZERO_COLUMN"),
            fd=False,
            comment="v is not differentiable in z_k at z_k = 0: outputs and finite gradients only",
        ),
        Sample(
            "a zero column z_3 = 0 with r_3 ≠ 0",
            (_ball_points(rng, (3, n), 1.0, [0.1, 0.5, 0.9]), Z_zero, r),
            flags=("ZERO_COLUMN",),
            fd=False,
            comment="v_3 = 0 exactly; not differentiable in z_3 there",
        ),
        Sample(
            "a small column ‖z_2‖ = 1e-4",
            (_ball_points(rng, (3, n), 1.0, [0.1, 0.5, 0.9]), Z_small, r),
            flags=("SMALL_COLUMN",),
            fd_step=1e-9,
            comment="v_2 is smooth at this scale only: steps ≪ ‖z_2‖",
        ),
        Sample(
            "a tiny column ‖z_1‖ = 1e-150",
            (_ball_points(rng, (3, n), 1.0, [0.1, 0.5, 0.9]), Z_tiny, r),
            flags=("SMALL_COLUMN",),
            dtypes=("float64",),
            fd=False,
            comment="‖z_1‖² = 1e-300: a form dividing by ‖z‖² would overflow; steps cannot resolve it",
        ),
        Sample(
            "points at 1 − 1e-7 of the radius, random Z and r",
            (x_boundary, Z, r),
            flags=("BALL_BOUNDARY",),
            dtypes=("float64",),
            fd_step=5e-11,
            fd_rtol=1e-5,
        ),
        Sample(
            "points at 0.999 of the radius (float32 too)",
            (_ball_points(rng, (3, n), 1.0, [0.999] * 3), Z, r),
            flags=("BALL_BOUNDARY",),
            fd_step=1e-8,
            comment="λ = 1000: float32 rounding of x (1e-7 relative) moves the output by ~1e-4",
        ),
        Sample(
            "‖z_k‖ = 30 at 0.999 of the radius: √c v ≈ 450, sinh overflows unscaled",
            (_ball_points(rng, (3, n), 1.0, [0.999] * 3), Z_big, r),
            flags=("SATURATED", "BALL_BOUNDARY"),
            dtypes=("float64",),
            fd_step=1e-9,
            comment="y rounds onto the boundary; the gradients are ~e^{-450}, finite",
        ),
        Sample(
            "‖z_k‖ = 30 at 0.5 of the radius (float32: √c v ≈ 100 > 89)",
            (_ball_points(rng, (3, n), 1.0, [0.5, 0.45, 0.55]), Z_big, r),
            flags=("SATURATED",),
            fd_step=1e-8,
        ),
        Sample(
            "c → 0 (c = 1e-10): y_k → 2⟨x, z_k⟩ − 2‖z_k‖ r_k",
            (rng.standard_normal((3, n)), Z, r),
            {"c": 1e-10},
            flags=("C_TO_ZERO",),
        ),
        Sample(
            "large offsets |r_k| ≈ 3 (cosh(2√c r) ≈ 200)",
            (_ball_points(rng, (3, n), 1.0, [0.1, 0.5, 0.8]), Z, np.array([3.0, -2.5, 0.0])),
        ),
        Sample("points at the origin (rows 0 and 2)", (x_origin, Z, r), flags=("AT_ORIGIN",)),
        Sample(
            "batch dims (2, 3, n)",
            (_ball_points(rng, (2, 3, n), 2.0, rng.uniform(0, 0.9, (2, 3))), Z, r),
            {"c": 2.0},
            flags=("BATCH_DIMS",),
        ),
        Sample(
            "n = m = 1",
            (np.array([[0.5], [-0.2], [0.0]]), np.array([[0.7]]), np.array([0.1])),
        ),
    ]


def _fc_errors():
    x = np.array([[0.1, 0.2], [0.3, -0.1]])
    Z = np.ones((2, 3))
    r = np.zeros(3)
    return [
        ErrorCase(
            "x outside the ball",
            (np.array([[0.1, 0.2], [0.8, 0.8]]), Z, r),
            match=r"argument 'x'.*inside the Poincaré ball.*c‖x‖² = 1\.28\d* in row 1",
        ),
        ErrorCase("x inside for c = 1 but not for c = 16", (x, Z, r), {"c": 16.0}, match=r"argument 'x'"),
    ]


def _conv_geometry(args, kwargs):
    """(k, stride, padding, Ho, Wo) of poincare_conv2d at these arguments."""
    _, height, width, _ = args[0].shape
    k, stride, pad = int(kwargs["kernel_size"]), int(kwargs.get("stride", 1)), int(kwargs.get("padding", 0))
    return k, stride, pad, (height + 2 * pad - k) // stride + 1, (width + 2 * pad - k) // stride + 1


def _beta_concat_ratio(piece_size, total_size):
    """``B(n/2, ½)/B(n_i/2, ½)`` from log-Gamma (the reference's beta_concat_ratio)."""

    def log_beta_half(a):
        return math.lgamma(a) + math.lgamma(0.5) - math.lgamma(a + 0.5)

    return math.exp(log_beta_half(total_size / 2) - log_beta_half(piece_size / 2))


def _conv_torch(torch, args, kwargs, cotangent):
    x, Z, r = (torch.from_numpy(a).requires_grad_() for a in args)
    c, below_one = float(kwargs.get("c", 1.0)), _below_one(args[0].dtype)
    k, stride, pad, _, _ = _conv_geometry(args, kwargs)
    batch, _, _, n = args[0].shape
    rho = _beta_concat_ratio(n, k * k * n)
    g = torch.from_numpy(cotangent)

    def step():
        x.grad = Z.grad = r.grad = None
        v = torch_artanh_factor(torch, torch.clamp(torch_c_squared_norm(x, c), max=below_one)) * x
        v_pad = torch.nn.functional.pad(v, (0, 0, pad, pad, pad, pad))  # zeros: log_0 of the origin
        # (B, Ho, Wo, n, k, k) -> pixel-major windows (B, Ho, Wo, k·k·n), row (di·k + dj)·n + channel
        windows = v_pad.unfold(1, k, stride).unfold(2, k, stride).permute(0, 1, 2, 4, 5, 3)
        tangent = rho * windows.reshape(batch, windows.shape[1], windows.shape[2], k * k * n)
        y = _t_fc(torch, torch_expmap0(torch, tangent, c), Z, r, c, below_one)
        y.backward(g)
        return y

    return step


def _conv_transcendentals(args, kwargs):
    """Per pixel one artanh (log_0); per window one tanh (exp_0 of the β-concatenation); then
    poincare_fc over the Ho·Wo windows (see _fc_transcendentals)."""
    _, _, _, out_height, out_width = _conv_geometry(args, kwargs)
    windows = args[0].shape[0] * out_height * out_width
    return _rows(args[0]) + windows + _fc_transcendentals(windows, args[1].shape[1])


def _conv_blas(args, kwargs):
    """poincare_fc's products on the unfolded windows P (B·Ho·Wo, k²n): P ẑ forward; Ā Zᵀ and
    Pᵀ Ā backward (unfold, fold and the maps are elementwise)."""
    _, _, _, out_height, out_width = _conv_geometry(args, kwargs)
    Z = args[1]
    windows = args[0].shape[0] * out_height * out_width
    P = np.full((windows, Z.shape[0]), 0.1, dtype=args[0].dtype)
    g_a = np.full((windows, Z.shape[1]), 0.5, dtype=args[0].dtype)

    def step():
        return P @ Z, g_a @ Z.T, P.T @ g_a

    return step


def _conv_bench_sample(rng, rows, cols):
    """An image batch of ball points (8 × 32 × 32, 16 channels) through a 3×3 layer to 16."""
    x = _ball_points(rng, (8, 32, 32, 16), 1.0, rng.uniform(0.05, 0.95, (8, 32, 32)))
    return Sample("bench", (x, rng.standard_normal((9 * 16, 16)) / 12.0, np.zeros(16)))


register(
    OpCases(
        "poincare_fc",
        dims={"B": (1, 5), "n": (1, 5), "m": (1, 4)},
        random=_fc_random,
        edges=_fc_edges,
        errors=_fc_errors,
        notes=NOTES,
        bench=Bench(
            make=ball_bench_sample("poincare_fc"),
            torch=_fc_torch,
            torch_label="torch: the reference's forward (λ, asinh, e^{−M}-scaled sinh) in torch ops; "
            "autograd backward",
            # see _fc_transcendentals; rows = every point of x
            transcendentals=lambda args, kwargs: _fc_transcendentals(_rows(args[0]), args[1].shape[1]),
            blas=_fc_blas,
        ),
    )
)


# -- poincare_beta_concat ---------------------------------------------------------------------
def _concat_random(rng, B, k, d):
    c = _random_c(rng)
    return Sample("random", (_ball_points(rng, (B, k, d), c, rng.uniform(0, 0.95, (B, k))),), {"c": c})


def _concat_edges():
    rng = np.random.default_rng(22)
    pieces = _ball_points(rng, (2, 3, 2), 1.0, rng.uniform(0, 0.9, (2, 3)))
    pieces[0, 1] = 0.0
    return [
        Sample(
            "a single piece (k = 1): the identity",
            (_ball_points(rng, (3, 1, 4), 1.0, [0.1, 0.5, 0.9]),),
        ),
        Sample("one piece at the origin", (pieces,), flags=("AT_ORIGIN",)),
        Sample("every piece at the origin", (np.zeros((2, 3, 2)),), flags=("AT_ORIGIN",)),
        Sample(
            "pieces at 1 − 1e-7 of the radius",
            (_ball_points(rng, (2, 2, 3), 1.0, np.full((2, 2), BOUNDARY)),),
            flags=("BALL_BOUNDARY",),
            dtypes=("float64",),
            fd_step=5e-11,
        ),
        Sample(
            "pieces at 0.999 of the radius (float32 too)",
            (_ball_points(rng, (2, 2, 3), 1.0, np.full((2, 2), 0.999)),),
            flags=("BALL_BOUNDARY",),
            fd_step=1e-8,
        ),
        Sample(
            "c → 0 (c = 1e-10): ρ·concatenation",
            (rng.standard_normal((2, 3, 2)),),
            {"c": 1e-10},
            flags=("C_TO_ZERO",),
        ),
        Sample(
            "batch dims (2, 2, k, d), c = 2.5",
            (_ball_points(rng, (2, 2, 3, 2), 2.5, rng.uniform(0, 0.9, (2, 2, 3))),),
            {"c": 2.5},
            flags=("BATCH_DIMS",),
        ),
        Sample(
            "no batch dims: (k, d) = (9, 1)",
            (_ball_points(rng, (9, 1), 1.0, rng.uniform(0, 0.9, 9)),),
        ),
    ]


def _concat_errors():
    return [
        ErrorCase(
            "a piece outside the ball",
            (np.array([[[0.1, 0.2], [0.9, 0.9]]]),),
            match=r"argument 'x'.*inside the Poincaré ball.*in row \(0, 1\)",
        ),
    ]


register(
    OpCases(
        "poincare_beta_concat",
        dims={"B": (1, 4), "k": (1, 4), "d": (1, 4)},
        random=_concat_random,
        edges=_concat_edges,
        errors=_concat_errors,
        notes=NOTES,
    )
)


# -- poincare_conv2d -------------------------------------------------------------------------
def _conv_random(rng, B, H, W, n, m):
    c = _random_c(rng)
    padding = int(rng.integers(0, 2))
    kernel_size = int(rng.integers(padding + 1, min(3, H + 2 * padding, W + 2 * padding) + 1))
    stride = int(rng.integers(1, 3))
    x = _ball_points(rng, (B, H, W, n), c, rng.uniform(0, 0.95, (B, H, W)))
    Z = rng.standard_normal((kernel_size * kernel_size * n, m)) * rng.uniform(0.2, 1.0)
    r = 0.3 * rng.standard_normal(m)
    params = {"c": c, "kernel_size": kernel_size, "stride": stride, "padding": padding}
    return Sample("random", (x, Z, r), params)


def _conv_edges():
    rng = np.random.default_rng(23)
    n, m = 2, 3
    x = _ball_points(rng, (2, 4, 5, n), 1.0, rng.uniform(0, 0.9, (2, 4, 5)))
    Z1, r1 = rng.standard_normal((n, m)), 0.3 * rng.standard_normal(m)
    Z3, r3 = 0.5 * rng.standard_normal((9 * n, m)), 0.3 * rng.standard_normal(m)
    Z_id, r_id = _identity_Z(n, n)
    return [
        Sample("kernel 1: poincare_fc per pixel", (x, Z1, r1), {"kernel_size": 1}),
        Sample(
            "kernel 1 with the identity init: y = x",
            (x, Z_id, r_id),
            {"kernel_size": 1},
            flags=("IDENTITY_INIT",),
        ),
        Sample(
            "kernel 3, padding 1 (the ResNet's convolution)",
            (x, Z3, r3),
            {"kernel_size": 3, "padding": 1},
            flags=("CONV_GEOMETRY",),
        ),
        Sample(
            "kernel 3, stride 2, padding 1 (downsampling)",
            (x, Z3, r3),
            {"kernel_size": 3, "stride": 2, "padding": 1},
            flags=("CONV_GEOMETRY",),
        ),
        Sample(
            "kernel 2, stride 3, no padding (pixels no window reads)",
            (x, rng.standard_normal((4 * n, m)), r1),
            {"kernel_size": 2, "stride": 3},
            flags=("CONV_GEOMETRY",),
            comment="the last row and columns are never read: their gradient is exactly 0",
        ),
        Sample(
            "a kernel as large as the padded image (one output pixel)",
            (x[:, :3, :3], Z3, r3),
            {"kernel_size": 3},
            flags=("CONV_GEOMETRY",),
        ),
        Sample(
            "an image at the origin",
            (np.zeros((1, 3, 3, n)), Z3, r3),
            {"kernel_size": 3, "padding": 1},
            flags=("AT_ORIGIN",),
        ),
        Sample(
            "pixels at 1 − 1e-7 of the radius",
            (_ball_points(rng, (1, 3, 3, n), 1.0, np.full((1, 3, 3), BOUNDARY)), Z3, r3),
            {"kernel_size": 3, "padding": 1},
            flags=("BALL_BOUNDARY",),
            dtypes=("float64",),
            fd_step=5e-11,
            fd_rtol=1e-5,
        ),
        Sample(
            "c → 0 (c = 1e-10)",
            (rng.standard_normal((1, 3, 3, n)), Z3, r3),
            {"c": 1e-10, "kernel_size": 3, "padding": 1},
            flags=("C_TO_ZERO",),
        ),
    ]


def _conv_errors():
    x = np.zeros((1, 3, 3, 2))
    Z = np.ones((18, 2))
    r = np.zeros(2)
    return [
        ErrorCase(
            "Z rows ≠ kernel_size² · n",
            (x, np.ones((8, 2)), r),
            {"kernel_size": 3},
            match=r"argument 'Z'.*18 rows",
        ),
        ErrorCase(
            "kernel larger than the padded image",
            (x, np.ones((32, 2)), r),
            {"kernel_size": 4},
            match=r"argument 'kernel_size'.*padded image \(3 × 3\)",
        ),
        ErrorCase(
            "padding as wide as the kernel",
            (x, np.ones((2, 2)), r),
            {"kernel_size": 1, "padding": 1},
            match=r"argument 'padding'.*padding < kernel_size = 1",
        ),
        ErrorCase(
            "a pixel outside the ball",
            (np.full((1, 3, 3, 2), 0.8), Z, r),
            {"kernel_size": 3},
            match=r"argument 'x'.*inside the Poincaré ball",
        ),
    ]


register(
    OpCases(
        "poincare_conv2d",
        dims={"B": (1, 2), "H": (1, 4), "W": (1, 4), "n": (1, 2), "m": (1, 2)},
        random=_conv_random,
        edges=_conv_edges,
        errors=_conv_errors,
        notes=NOTES,
        bench=Bench(
            make=_conv_bench_sample,
            kwargs={"kernel_size": 3, "padding": 1},
            torch=_conv_torch,
            torch_label="torch: log_0 per pixel, F.pad, Tensor.unfold windows, exp_0, the FC forward in "
            "torch ops; autograd backward",
            transcendentals=_conv_transcendentals,
            blas=_conv_blas,
        ),
    )
)


# -- poincare_relu ---------------------------------------------------------------------------
def _relu_random(rng, B, n):
    c = _random_c(rng)
    return Sample("random", (_ball_points(rng, (B, n), c, rng.uniform(0, 0.95, B)),), {"c": c})


def _relu_edges():
    rng = np.random.default_rng(24)
    n = 4
    mixed = _ball_points(rng, (3, n), 1.0, [0.2, 0.6, 0.9])
    kink = mixed.copy()
    kink[:, 1] = 0.0
    return [
        Sample("all coordinates negative: the origin", (-np.abs(mixed),)),
        Sample("all coordinates positive: the identity", (np.abs(mixed),)),
        Sample("the origin", (np.zeros((2, n)),), flags=("AT_ORIGIN", "KINK"), fd=False),
        Sample("a coordinate exactly 0", (kink,), flags=("KINK",), fd=False),
        Sample(
            "points at 1 − 1e-7 of the radius",
            (_ball_points(rng, (3, n), 1.0, [BOUNDARY] * 3),),
            flags=("BALL_BOUNDARY",),
            dtypes=("float64",),
            fd_step=5e-11,
        ),
        Sample(
            "points at 0.999 of the radius (float32 too)",
            (_ball_points(rng, (3, n), 1.0, [0.999] * 3),),
            flags=("BALL_BOUNDARY",),
            fd_step=1e-8,
        ),
        Sample("c → 0 (c = 1e-10): relu", (rng.standard_normal((2, n)),), {"c": 1e-10}, flags=("C_TO_ZERO",)),
        Sample(
            "batch dims (2, 3, n)",
            (_ball_points(rng, (2, 3, n), 1.0, rng.uniform(0, 0.9, (2, 3))),),
            flags=("BATCH_DIMS",),
        ),
    ]


def _relu_torch(torch, args, kwargs, cotangent):
    x = torch.from_numpy(args[0]).requires_grad_()
    c, below_one = float(kwargs.get("c", 1.0)), _below_one(args[0].dtype)
    g = torch.from_numpy(cotangent)

    def step():
        x.grad = None
        o = _t_tangent_relu(torch, x, c, below_one)
        o.backward(g)
        return o

    return step


def _relu_errors():
    return [
        ErrorCase(
            "a point outside the ball",
            (np.array([[0.1, 0.2], [1.2, 0.0]]),),
            match=r"argument 'x'.*c‖x‖² = 1\.44 in row 1",
        ),
    ]


register(
    OpCases(
        "poincare_relu",
        dims={"B": (1, 5), "n": (1, 6)},
        random=_relu_random,
        edges=_relu_edges,
        errors=_relu_errors,
        notes=NOTES,
        bench=Bench(
            make=ball_bench_sample("poincare_relu"),
            torch=_relu_torch,
            torch_label="torch: exp_0(relu(log_0 x)) with the reference's factors (log1p, tanh); "
            "autograd backward",
            # per point one artanh (log_0) and one tanh (exp_0)
            transcendentals=lambda args, kwargs: 2 * _rows(args[0]),
        ),
    )
)


# -- poincare_residual -------------------------------------------------------------------------
def _residual_random(rng, B, n):
    c = _random_c(rng)
    fx = _ball_points(rng, (B, n), c, rng.uniform(0, 0.95, B))
    x = _ball_points(rng, (B, n), c, rng.uniform(0, 0.95, B))
    activation = str(rng.choice(["tangent_relu", "none"]))
    return Sample("random", (fx, x), {"c": c, "activation": activation})


def _residual_edges():
    rng = np.random.default_rng(25)
    n = 4
    fx = _ball_points(rng, (3, n), 1.0, [0.3, 0.6, 0.9])
    x = _ball_points(rng, (3, n), 1.0, [0.5, 0.2, 0.7])
    return [
        Sample("F(x) = 0: act(x)", (np.zeros((3, n)), x), flags=("AT_ORIGIN",)),
        Sample("no activation: F(x) ⊕ x", (fx, x), {"activation": "none"}),
        Sample(
            "F(x) = −x: the sum is exactly the origin",
            (-x, x),
            flags=("AT_ORIGIN", "KINK"),
            fd=False,
            comment="every tangent coordinate sits at ReLU's kink",
        ),
        Sample(
            "x at 1 − 1e-6 of the radius, F(x) at 0.5",
            (_ball_points(rng, (3, n), 1.0, [0.5] * 3), _ball_points(rng, (3, n), 1.0, [1 - 1e-6] * 3)),
            flags=("BALL_BOUNDARY",),
            dtypes=("float64",),
            fd_step=1e-10,
            fd_rtol=1e-5,
            comment="1 − c‖F(x) ⊕ x‖² ≈ 1e-6; log_0 there amplifies rounding by ~1e6, which "
            "differences with smaller steps cannot resolve",
        ),
        Sample(
            "both at 1 − 1e-7 of the radius (finite outputs and gradients)",
            (
                _ball_points(rng, (3, n), 1.0, [BOUNDARY] * 3),
                _ball_points(rng, (3, n), 1.0, [BOUNDARY] * 3),
            ),
            flags=("BALL_BOUNDARY",),
            dtypes=("float64",),
            fd=False,
            comment="the sum can lie ~1e-14 from the boundary: no step resolves the differences",
        ),
        Sample(
            "batch dims (2, 3, n), c = 0.5",
            (
                _ball_points(rng, (2, 3, n), 0.5, rng.uniform(0, 0.9, (2, 3))),
                _ball_points(rng, (2, 3, n), 0.5, rng.uniform(0, 0.9, (2, 3))),
            ),
            {"c": 0.5},
            flags=("BATCH_DIMS",),
        ),
    ]


def _residual_torch(torch, args, kwargs, cotangent):
    fx, x = (torch.from_numpy(a).requires_grad_() for a in args)
    c, below_one = float(kwargs.get("c", 1.0)), _below_one(args[0].dtype)
    activation = kwargs.get("activation", "tangent_relu")
    g = torch.from_numpy(cotangent)

    def step():
        fx.grad = x.grad = None
        o = torch_mobius_add(torch, fx, x, c)
        if activation == "tangent_relu":
            o = _t_tangent_relu(torch, o, c, below_one)
        o.backward(g)
        return o

    return step


def _residual_errors():
    x = np.array([[0.1, 0.2]])
    return [
        ErrorCase(
            "fx outside the ball",
            (np.array([[0.9, 0.9]]), x),
            match=r"argument 'fx'.*inside the Poincaré ball",
        ),
        ErrorCase("x outside the ball", (x, np.array([[1.0, 0.0]])), match=r"argument 'x'.*c‖x‖² = 1\.0"),
    ]


register(
    OpCases(
        "poincare_residual",
        dims={"B": (1, 5), "n": (1, 6)},
        random=_residual_random,
        edges=_residual_edges,
        errors=_residual_errors,
        notes=NOTES,
        bench=Bench(
            make=ball_bench_sample("poincare_residual"),
            torch=_residual_torch,
            torch_label="torch: Möbius addition (the reference's stable form), then exp_0(relu(log_0 ·)); "
            "autograd backward",
            # Möbius addition is arithmetic; the tangent ReLU: per point one artanh and one tanh
            transcendentals=lambda args, kwargs: (
                0 if kwargs.get("activation", "tangent_relu") == "none" else 2 * _rows(args[0])
            ),
        ),
    )
)


# -- transcriptions of the official code's deviations (``refimpl deviations``) ------------------------
def _hnn_fc(x, Z, r, c, lam):
    """HNN++'s FC with a given conformal factor λ, the textbook way: sinh, then the projection."""
    sqrt_c = np.sqrt(c)
    z_norm = np.maximum(np.linalg.norm(Z, axis=0), 1e-15)
    two_r = 2 * sqrt_c * r
    with np.errstate(over="ignore", invalid="ignore"):
        v = (2 * z_norm / sqrt_c) * np.arcsinh(
            sqrt_c * lam / z_norm * (x @ Z) * np.cosh(two_r) - (lam - 1) * np.sinh(two_r)
        )
        w = np.sinh(sqrt_c * v) / sqrt_c
        return w / (1 + np.sqrt(1 + c * (w * w).sum(-1, keepdims=True)))


@transcribes("poincare-resnet-linreg-lambda", outputs=("y",))
def _poincare_resnet_fc(x, Z, r, *, c, dtype):
    """maxvanspengler/poincare-resnet ``poincare_mlr``: ``lam = 2 * (1 - c‖x‖²)``."""
    return {"y": _hnn_fc(x, Z, r, c, 2 * (1 - c * (x * x).sum(-1, keepdims=True)))}


@transcribes("hypll-fc-sinh-overflow", outputs=("y",))
def _hypll_fc(x, Z, r, *, c, dtype):
    """hypll ``poincare_fully_connected``: the right λ, but sinh of a large argument overflows."""
    return {"y": _hnn_fc(x, Z, r, c, 2 / (1 - c * (x * x).sum(-1, keepdims=True))).astype(dtype)}
