"""Conformance cases for `corda_covariance` and `corda_init`.

``corda_init``'s factors hold singular vectors, defined only up to sign (and rotation inside a
repeated singular value), so ``compare_as`` compares ``s·B A``, ``W_res`` and their sum (= W),
as for ``pissa_init``.
"""

from __future__ import annotations

import numpy as np

import refimpl

from ..._cases import Bench, ErrorCase, OpCases, Sample, register
from ...deviations import transcribes

# -- corda_covariance ----------------------------------------------------------------------------------
COVARIANCE_NOTES = {
    "ALL_NEGATIVE_SAMPLE": "every entry of a sample negative: |max X_s| (the official scale, the least "
    "negative entry's magnitude) differs from max |X_s|; a port that takes max(|X|) fails here",
    "PADDING": "lengths shorter than T with large padding rows: the padding must be left out of the "
    "scale and of the Gram matrix",
    "OFFICIAL_DIVISOR": "official_divisor = 256 instead of N (the authors' code)",
    "SINGLE_ROW": "T = 1: each sample contributes a rank-1 Gram matrix",
}


def _random_covariance(rng, N, T, I):  # noqa: N803 - dimension names as in the specs
    X = rng.standard_normal((N, T, I)) * np.exp(rng.uniform(-2.0, 2.0, size=(N, 1, 1)))
    X += rng.uniform(-0.5, 0.5)  # an offset: the largest element and the largest magnitude differ
    args = (X,) if rng.random() < 0.5 else (X, rng.integers(1, T + 1, size=N))
    kwargs = {"sample_scaling": str(rng.choice(["abs_of_max", "max_abs", "none"]))}
    if rng.random() < 0.3:
        kwargs["official_divisor"] = 256
    return Sample("random", args, kwargs)


def _covariance_edges():
    rng = np.random.default_rng(21)
    negative = -np.abs(rng.standard_normal((3, 4, 5))) - 0.1
    padded = rng.standard_normal((3, 5, 4))
    padded[0, 2:] = 50.0  # padding rows: far larger than the data, must not enter the scale
    padded[2, 4:] = -50.0
    lengths = np.array([2, 5, 4])
    return [
        Sample(
            "all-negative samples, abs_of_max",
            (negative,),
            {"sample_scaling": "abs_of_max"},
            flags=("ALL_NEGATIVE_SAMPLE",),
            comment="scale = magnitude of the least negative entry, well below max |X_s|",
        ),
        Sample(
            "all-negative samples, max_abs",
            (negative,),
            {"sample_scaling": "max_abs"},
            flags=("ALL_NEGATIVE_SAMPLE",),
        ),
        Sample(
            "padded samples (lengths 2, 5, 4 of T = 5), abs_of_max",
            (padded, lengths),
            {"sample_scaling": "abs_of_max"},
            flags=("PADDING",),
        ),
        Sample(
            "padded samples, max_abs, official divisor 256",
            (padded, lengths),
            {"sample_scaling": "max_abs", "official_divisor": 256},
            flags=("PADDING", "OFFICIAL_DIVISOR"),
        ),
        Sample(
            "one row per sample (T = 1), no scaling",
            (rng.standard_normal((4, 1, 3)),),
            {"sample_scaling": "none"},
            flags=("SINGLE_ROW",),
        ),
        Sample(
            "one sample, one feature",
            (rng.standard_normal((1, 6, 1)) + 3.0,),
            {"sample_scaling": "abs_of_max"},
        ),
    ]


def _covariance_errors():
    X = np.ones((2, 3, 2))
    nonpositive = -np.ones((2, 3, 2))
    nonpositive[1, 0, 0] = 0.0  # sample 1's largest element is 0
    return [
        ErrorCase(
            "lengths above T", (X, np.array([1, 4])), {"sample_scaling": "none"}, match=r"'lengths'.*T = 3"
        ),
        ErrorCase(
            "sample whose largest element is 0 (abs_of_max)",
            (nonpositive,),
            {"sample_scaling": "abs_of_max"},
            match=r"'X'.*sample 1 has scale 0",
        ),
        ErrorCase(
            "all-zero sample (max_abs)",
            (np.concatenate([X[:1], np.zeros((1, 3, 2))]),),
            {"sample_scaling": "max_abs"},
            match=r"'X'.*sample 1 has scale 0",
        ),
    ]


def _covariance_torch(torch, args, kwargs, cotangent):
    """The official hook's arithmetic in torch: X / |max X_s| (or the other scale), Xᵀ X summed, / N."""
    X = torch.from_numpy(args[0])
    lengths = torch.from_numpy(args[1]) if len(args) > 1 and args[1] is not None else None
    scaling = kwargs["sample_scaling"]
    divisor = float(X.shape[0] if kwargs.get("official_divisor") is None else kwargs["official_divisor"])

    def step():
        with torch.no_grad():
            return covariance()

    def covariance():
        valid = None if lengths is None else (torch.arange(X.shape[1])[None, :] < lengths[:, None])[..., None]
        if scaling == "abs_of_max":
            peaks = X if valid is None else torch.where(valid, X, -torch.inf)
            scales = peaks.amax(dim=(1, 2)).abs()
        elif scaling == "max_abs":
            magnitudes = X.abs() if valid is None else torch.where(valid, X.abs(), 0.0)
            scales = magnitudes.amax(dim=(1, 2))
        else:
            scales = torch.ones(X.shape[0], dtype=X.dtype)
        scaled = X / scales[:, None, None]
        if valid is not None:
            scaled = torch.where(valid, scaled, 0.0)
        stacked = scaled.reshape(-1, X.shape[2])
        return stacked.T @ stacked / divisor

    return step


def _covariance_blas(args, kwargs):
    """The Gram product X̃ᵀ X̃ of the stacked (N·T, I) scaled activations."""
    stacked = args[0].reshape(-1, args[0].shape[-1])

    def step():
        stacked.T @ stacked

    return step


register(
    OpCases(
        "corda_covariance",
        dims={"N": (1, 4), "T": (1, 5), "I": (1, 6)},
        random=_random_covariance,
        edges=_covariance_edges,
        errors=_covariance_errors,
        notes=COVARIANCE_NOTES,
        bench=Bench(
            sizes={"N": 8, "T": 128, "I": 256},
            kwargs={"sample_scaling": "abs_of_max"},
            torch=_covariance_torch,
            torch_label="the official hook's scaling and Gram product, all samples at once",
            blas=_covariance_blas,
        ),
        defaults={"lengths": None, "official_divisor": None},
    )
)


# -- corda_init ----------------------------------------------------------------------------------------
INIT_NOTES = {
    "CONTEXT_FREE": "C = I: C_λ = (1 + λ)I and IPM is PiSSA (the same s·B A and W_res)",
    "RANK_DEFICIENT_C": "fewer calibration rows than features: C is singular, only the damping makes "
    "C_λ invertible",
    "KPM": "the smallest r components: the least well-determined singular values",
    "ZERO_COMPONENTS": "KPM on a rank-deficient W: the kept singular values are 0, A = B = 0, W_res = W",
    "FULL_RANK": "r = min(out, in): s·B A = W and W_res = 0 up to rounding",
    "DAMPING_LOOP": "a tiny initial λ on a singular C: ‖C_λ C_λ⁻¹ − I‖_F >= tolerance, λ doubles until "
    "the inverse is accurate (float64 only: the float32 loop stops at another λ)",
    "SCALED_C": "C multiplied by 1e6: A, B and W_res do not depend on the scale of C",
}


def _orthonormal_columns(rng, rows, columns):
    q, _ = np.linalg.qr(rng.standard_normal((rows, columns)))
    return q


def _with_spectrum(rng, O, I, singular_values):  # noqa: N803
    k = len(singular_values)
    return _orthonormal_columns(rng, O, k) * singular_values @ _orthonormal_columns(rng, I, k).T


def _covariance_of(rng, rows, I):  # noqa: N803
    X = rng.standard_normal((rows, I)) * rng.uniform(0.3, 2.0, size=I)
    return X.T @ X / rows


def init_compare_as(outputs, arguments):
    """The sign- and rotation-invariant quantities: s·B A, W_res and W_res + s·B A."""
    A, B, W_res = outputs
    principal = arguments["scale"] * (B @ A)
    return {"s·B A": principal, "W_res": W_res, "W_res + s·B A": W_res + principal}


def _random_init(rng, O, I):  # noqa: N803
    k = min(O, I)
    r = int(rng.integers(1, k + 1))
    top, ratio = rng.uniform(0.5, 2.0), rng.uniform(0.3, 0.8)
    W = _with_spectrum(rng, O, I, top * ratio ** np.arange(k))
    C = _covariance_of(rng, int(rng.integers(1, 2 * I + 1)), I)  # sometimes fewer rows than features
    lora_alpha = float(rng.choice([1.0, 8.0, 16.0]))
    kwargs = {
        "mode": str(rng.choice(["ipm", "kpm"])),
        "scale": lora_alpha / r,
        "damping": float(rng.choice([0.01, 0.03])),
        "inverse_tolerance": float(rng.choice([0.05, 0.1])),
    }
    return Sample("random", (W, C, r), kwargs)


def _init_edges():
    rng = np.random.default_rng(23)
    W = _with_spectrum(rng, 6, 5, np.array([3.0, 2.0, 1.2, 0.7, 0.3]))
    deficient_C = _covariance_of(rng, 2, 5)
    full_C = _covariance_of(rng, 12, 5)
    return [
        Sample(
            "C = I, IPM (PiSSA)", (W, np.eye(5), 2), {"mode": "ipm", "scale": 2.0}, flags=("CONTEXT_FREE",)
        ),
        Sample(
            "rank-2 C of 5 features, IPM",
            (W, deficient_C, 2),
            {"mode": "ipm"},
            flags=("RANK_DEFICIENT_C",),
        ),
        Sample(
            "rank-2 C of 5 features, KPM",
            (W, deficient_C, 2),
            {"mode": "kpm", "scale": 0.5},
            flags=("RANK_DEFICIENT_C", "KPM"),
        ),
        Sample("KPM, r = 1, full-rank C", (W, full_C, 1), {"mode": "kpm"}, flags=("KPM",)),
        Sample(
            "KPM on a rank-2 W (5 × 4), r = 2: zero kept singular values",
            (_with_spectrum(rng, 5, 4, np.array([2.0, 0.7])), _covariance_of(rng, 9, 4), 2),
            {"mode": "kpm"},
            flags=("KPM", "ZERO_COMPONENTS"),
        ),
        Sample(
            "r = min(out, in) = 5, IPM", (W, full_C, 5), {"mode": "ipm", "scale": 2.0}, flags=("FULL_RANK",)
        ),
        Sample(
            "wide W (3, 7), IPM r = 3",
            (_with_spectrum(rng, 3, 7, np.array([1.5, 0.8, 0.2])), _covariance_of(rng, 15, 7), 3),
            {"mode": "ipm"},
            flags=("FULL_RANK",),
        ),
        Sample(
            "C × 1e6, IPM",
            (W, 1e6 * full_C, 2),
            {"mode": "ipm"},
            flags=("SCALED_C",),
        ),
        Sample(
            "damping 1e-20 on a rank-1 C: the loop doubles λ",
            (W, _covariance_of(rng, 1, 5), 2),
            {"mode": "ipm", "damping": 1e-20},
            flags=("DAMPING_LOOP", "RANK_DEFICIENT_C"),
            dtypes=("float64",),
        ),
    ]


def _init_bench(rng, rows, cols):
    """A Gaussian (256, 256) weight, the covariance of 1024 calibration rows, r = 32: every kept
    singular value well above rounding, so the factors are defined up to the sign rule (the
    sampler's geometric spectra keep components at σ ≈ 1e-19, whose vectors are rounding noise)."""
    W = rng.standard_normal((256, 256)) / 16
    return Sample("bench", (W, _covariance_of(rng, 1024, 256), 32), {"mode": "ipm"})


def _init_errors():
    return [
        ErrorCase(
            "r > min(out, in)",
            (np.ones((3, 5)), np.eye(5), 4),
            {"mode": "ipm"},
            match=r"'r'.*min\(out, in\) = 3",
        ),
        ErrorCase(
            "C = 0 (no calibration input)",
            (np.ones((3, 5)), np.zeros((5, 5)), 2),
            {"mode": "ipm"},
            match=r"'C'.*positive mean diagonal",
        ),
    ]


def _init_torch(torch, args, kwargs, cotangent):
    """peft's collect_eigens_for_layer + LoraLayer.corda_init in torch (damping loop, SVD, factors)."""
    W, C = torch.from_numpy(args[0]), torch.from_numpy(args[1])
    r, mode, scale = int(args[2]), kwargs["mode"], float(kwargs.get("scale", 1.0))

    def step():
        with torch.no_grad():
            return initialize()

    def initialize():
        identity = torch.eye(C.shape[0], dtype=C.dtype)
        damp = float(kwargs.get("damping", 0.01))
        while True:
            C_damped = C + torch.mean(torch.diag(C)) * damp * identity
            C_inverse = torch.linalg.inv(C_damped)
            if torch.dist(C_damped @ C_inverse, identity).item() < float(
                kwargs.get("inverse_tolerance", 0.05)
            ):
                break
            damp *= 2
        U, S, Vh = torch.linalg.svd(W @ C_damped, full_matrices=False)
        kept = slice(0, r) if mode == "ipm" else slice(S.shape[0] - r, S.shape[0])
        U_kept = U[:, kept]
        # the reference's sign rule: the largest |entry| of each kept column of U positive
        signs = torch.sign(U_kept.gather(0, U_kept.abs().argmax(dim=0, keepdim=True)))[0]
        root = torch.sqrt(S[kept] / scale) * signs
        A = root[:, None] * (Vh[kept] @ C_inverse)
        B = U_kept * root
        return A, B, W - scale * (B @ A)

    return step


register(
    OpCases(
        "corda_init",
        dims={"O": (1, 7), "I": (1, 7)},
        random=_random_init,
        edges=_init_edges,
        errors=_init_errors,
        notes=INIT_NOTES,
        compare_as=init_compare_as,
        bench=Bench(
            make=_init_bench,
            kwargs={"mode": "ipm"},
            torch=_init_torch,
            torch_label="peft's CorDA damping loop, torch.linalg.svd and factors",
        ),
        defaults={"scale": 1.0, "damping": 0.01, "inverse_tolerance": 0.05},
    )
)


# -- transcriptions of the official code's deviations (``refimpl deviations``) ------------------------
@transcribes("peft-corda-float32-only", outputs=("A", "B", "W_res"))
def _peft_corda_init(W, C, r, *, mode, scale, damping, inverse_tolerance, dtype):
    """peft's CorDA: refuses float64 weights; the others are decomposed in float32."""
    if dtype == "float64":
        raise TypeError("Please initialize CorDA under float32, float16, or bfloat16.")
    outputs = refimpl.get("corda_init")(
        W.astype(np.float32),
        C.astype(np.float32),
        r,
        mode=mode,
        scale=scale,
        damping=damping,
        inverse_tolerance=inverse_tolerance,
    )
    return dict(zip(("A", "B", "W_res"), outputs, strict=True))
