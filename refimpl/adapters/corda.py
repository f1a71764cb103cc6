"""CorDA: context-oriented decomposition of a weight into adapter and frozen residual (CorDA paper)."""

from __future__ import annotations

import numpy as np

from ..authoring import (
    ArgumentError,
    Example,
    FloatArray,
    InputError,
    IntArray,
    IntScalar,
    OneOf,
    Paper,
    RealScalar,
    array_namespace,
    known_deviation,
    op,
)
from .pissa import check_rank

__all__ = ["corda_covariance", "corda_init"]

PAPER = Paper(
    "CorDA: Context-Oriented Decomposition Adaptation of Large Language Models for Task-Aware "
    "Parameter-Efficient Fine-tuning",
    arxiv="2406.05223",
    year=2024,
    code="iboing/CorDA",
)


# -- corda_covariance ----------------------------------------------------------------------------------
def _sample_scales(xp, X, valid, sample_scaling):
    """Per-sample divisor of the scaled activations: |max X_s| or max |X_s| over the valid rows."""
    if sample_scaling == "abs_of_max":
        peaks = X if valid is None else xp.where(valid[:, :, None], X, -xp.inf)
        return xp.abs(xp.max(peaks, axis=(1, 2)))
    magnitudes = xp.abs(X) if valid is None else xp.where(valid[:, :, None], xp.abs(X), 0)
    return xp.max(magnitudes, axis=(1, 2))


def _valid_rows(xp, X, lengths):
    if lengths is None:
        return None
    return xp.arange(X.shape[1])[None, :] < lengths[:, None]


def _check_covariance(arguments) -> None:
    X, lengths, sample_scaling = arguments["X"], arguments["lengths"], arguments["sample_scaling"]
    xp = array_namespace(X)
    if lengths is not None:
        longest = int(lengths.max())
        if longest > X.shape[1]:
            raise ArgumentError(
                "lengths",
                f"valid row counts 1 <= lengths[s] <= T = {X.shape[1]} (the padded length of X)",
                f"max(lengths) = {longest}",
            )
    if sample_scaling == "none":
        return
    scales = _sample_scales(xp, X, _valid_rows(xp, X, lengths), sample_scaling)
    if bool(xp.any(scales == 0)):
        s = int(xp.argmax(scales == 0))
        what = "|max X_s| (its largest entry)" if sample_scaling == "abs_of_max" else "max |X_s|"
        raise ArgumentError(
            "X",
            f"every sample with a nonzero scale {what}: sample_scaling={sample_scaling!r} divides by it",
            f"sample {s} has scale 0",
        )


@op(
    inputs={
        "X": FloatArray("N", "T", "I"),
        "lengths": IntArray("N", low=1, optional=True),
        "sample_scaling": OneOf("abs_of_max", "max_abs", "none"),
        "official_divisor": IntScalar(1, optional=True),
    },
    outputs=("C",),
    check=_check_covariance,
)
def corda_covariance(X, lengths=None, *, sample_scaling, official_divisor=None):
    r"""The input covariance CorDA orients a weight's decomposition with, from calibration samples.

    CorDA decomposes each linear layer's weight "oriented by the context" of a few calibration
    samples: the layer's inputs on those samples enter through their (uncentered) covariance
    ``C`` (in, in). This op accumulates it the way the official code does: every sample is
    first divided by a per-sample scale, so that one sample with large activations does not
    dominate ``C``, and the per-sample Gram matrices are averaged. ``corda_init`` then uses C.

    Forward (sample s of ``X`` holds its ``T_s = lengths[s]`` valid rows, the rest is padding)::

        X_s    = X[s, :T_s]                          (T_s, in)
        c_s    = |max(X_s)|     sample_scaling = "abs_of_max"   (the official code)
               = max |X_s|      sample_scaling = "max_abs"
               = 1              sample_scaling = "none"
        X̃_s    = X_s / c_s
        C      = (1/N) Σ_s X̃_sᵀ X̃_s                  (in, in), symmetric PSD

    ``"abs_of_max"`` is the absolute value of the largest ELEMENT, not the largest magnitude:
    a sample whose entries are all negative is divided by the magnitude of its least negative
    entry (``torch.max(X).abs()``), which can be far below ``max |X_s|``. The Gram matrix is
    one product ``X̃ᵀ X̃`` of the stacked rows (padding rows are zero), so ``C`` is exactly
    symmetric.

    The scale of C does not matter to ``corda_init`` (C enters through ``W C_λ`` and
    ``C_λ⁻¹``, and the damping is relative to ``mean(diag C)``), but the per-sample scaling
    does: it reweights the samples against each other.

    Not differentiable: a calibration statistic.

    Convention (pinned from the official code, not from the paper). Both official
    implementations scale each sample by ``|max X_s|``: iboing/CorDA,
    ``cordalib/act_aware_utils.py``, ``calib_cov_distribution`` (``input / torch.max(input).abs()``)
    and huggingface/peft, ``peft/tuners/lora/corda.py``, ``calib_cov_distribution``. Whether the
    paper's ``C = X Xᵀ`` carries that scaling could not be pinned (the paper's text was not
    available when this was written), so ``sample_scaling`` has no default: pass
    ``"abs_of_max"`` to match both codes. The authors' code divides every sample's
    ``X̃_sᵀ X̃_s`` by a hard-coded 256 (its default calibration size) whatever N is; PEFT
    divides by the actual sample count N, as here. ``official_divisor=256`` reproduces the
    authors' code. The official hooks take one
    sample per forward call; ``lengths`` stands for samples of unequal length.

    Args:
        X: calibration activations (N, T, in): N samples of T rows each (float32 or float64),
            the inputs of the linear layer ``y = x Wᵀ``.
        lengths: optional (N,) integers in ``[1, T]``: sample s is ``X[s, :lengths[s]]`` and
            its remaining rows are padding, ignored (also by the scale). None: all T rows.
        sample_scaling: ``"abs_of_max"`` (official code), ``"max_abs"`` or ``"none"``;
            required (see the convention above). A sample whose scale is 0 is refused.
        official_divisor: None (default) divides the sum by N; an integer D divides it by D
            instead (256 in the authors' code).

    Returns:
        C: (in, in), in the dtype of X.

    Reference: Yang et al., *CorDA: Context-Oriented Decomposition Adaptation of Large
    Language Models for Task-Aware Parameter-Efficient Fine-tuning*, arXiv:2406.05223; code
    iboing/CorDA (``cordalib/act_aware_utils.py``) and huggingface/peft
    (``peft/tuners/lora/corda.py``).

    >>> import numpy as np, refimpl
    >>> X = np.array([[[2.0, -4.0]], [[-1.0, -2.0]]])   # two samples of one row
    >>> refimpl.adapters.corda_covariance(X, sample_scaling="abs_of_max")
    array([[1., 0.],
           [0., 4.]])
    >>> refimpl.adapters.corda_covariance(X, sample_scaling="max_abs")   # divides by 4 and 2
    array([[0.25, 0.  ],
           [0.  , 1.  ]])
    """
    N = X.shape[0]
    valid = _valid_rows(np, X, lengths)
    if sample_scaling == "none":
        X_tilde = X
    else:
        scales = _sample_scales(np, X, valid, sample_scaling)
        X_tilde = X / scales[:, None, None]
    if valid is not None:
        X_tilde = np.where(valid[:, :, None], X_tilde, 0).astype(X.dtype, copy=False)
    stacked = X_tilde.reshape(-1, X.shape[2])
    divisor = float(N if official_divisor is None else official_divisor)
    C = (stacked.T @ stacked) / divisor  # one Gram product: exactly symmetric
    return C, None


# -- corda_init ----------------------------------------------------------------------------------------
def _check_init(arguments) -> None:
    check_rank(arguments)
    C = arguments["C"]
    xp = array_namespace(C)
    diagonal_mean = float(xp.mean(xp.diagonal(C)))
    if not diagonal_mean > 0:
        raise ArgumentError(
            "C",
            "a covariance with a positive mean diagonal (the damping λ·mean(diag C)·I is relative "
            "to it; C = 0 means no calibration input reached the layer)",
            f"mean(diag C) = {diagonal_mean:g}",
        )


def damped_inverse(C, damping, inverse_tolerance, xp=np):
    """CorDA's damping loop: ``C_λ = C + λ·mean(diag C)·I`` and its inverse, λ doubled from
    ``damping`` until ``‖C_λ C_λ⁻¹ − I‖_F < inverse_tolerance``. Returns ``(C_λ, C_λ⁻¹)``.

    A singular ``C_λ`` (possible only for a C that is not positive semidefinite) counts as a
    failed check, like a non-finite error; λ overflowing the dtype is refused.
    """
    identity = xp.eye(C.shape[0], dtype=C.dtype)
    diagonal_mean = xp.mean(xp.diagonal(C))
    lam = float(damping)
    while True:
        shift = lam * diagonal_mean  # in the dtype of C
        if not bool(xp.isfinite(shift)):
            raise InputError(
                "corda_init: argument 'C': expected a covariance whose damped inverse converges, got "
                f"‖C_λ C_λ⁻¹ − I‖_F >= {inverse_tolerance:g} for every λ up to overflow"
            )
        C_damped = C + shift * identity
        try:
            C_inverse = xp.linalg.inv(C_damped)
            inverse_error = float(xp.linalg.norm(C_damped @ C_inverse - identity))
        except np.linalg.LinAlgError:  # exactly singular: not converged, damp more
            inverse_error = np.inf
        if inverse_error < inverse_tolerance:  # NaN (a singular inverse on a GPU) fails too
            return C_damped, C_inverse
        lam *= 2.0


@op(
    inputs={
        "W": FloatArray("O", "I"),
        "C": FloatArray("I", "I"),
        "r": IntScalar(1),
        "mode": OneOf("ipm", "kpm"),
        "scale": RealScalar(0, low_open=True),
        "damping": RealScalar(0, low_open=True),
        "inverse_tolerance": RealScalar(0, low_open=True),
    },
    outputs=("A", "B", "W_res"),
    check=_check_init,
)
def corda_init(W, C, r, *, mode, scale=1.0, damping=0.01, inverse_tolerance=0.05):
    r"""Initialize LoRA's factors from the SVD of ``W C``, oriented by the input covariance C.

    PiSSA trains the top singular directions of W itself. CorDA first multiplies W by the
    covariance C of the layer's inputs on a few calibration samples (``corda_covariance``):
    the singular directions of ``W C`` are those in which the layer acts *on that data*. The
    decomposition is then mapped back with ``C⁻¹`` so that it still reproduces W exactly:
    ``W = U Σ (C⁻¹ V)ᵀ``. Two modes: the instruction-previewed adaptation (IPM, calibration
    data from the fine-tuning task) trains the r largest components; the knowledge-preserved
    adaptation (KPM, question-answering data) trains the r smallest and freezes the large ones
    that carry the world knowledge to keep. The layer's output is unchanged at initialization
    (``W_res + s·B A = W``); use the factors with ``lora_linear(x, W_res, A, B, scale=s)``.

    Forward::

        C_λ   = C + λ·mean(diag C)·I     λ = damping, doubled until ‖C_λ C_λ⁻¹ − I‖_F < inverse_tolerance
        W C_λ = U Σ Vᵀ                   thin SVD, Σ descending, k = min(out, in)
        V̂ᵀ    = Vᵀ C_λ⁻¹                 so that W = U Σ V̂ᵀ exactly
        kept  = 1..r (mode "ipm") or k−r+1..k (mode "kpm")
        Σ'    = Σ_kept / s
        A     = diag(√Σ') V̂ᵀ_kept        (r, in)
        B     = U_kept diag(√Σ')         (out, r)
        W_res = W − s·B A                (out, in), frozen

    ``s·B A = U_kept Σ_kept V_keptᵀ C_λ⁻¹`` is the kept part of the oriented decomposition;
    ``W_res`` holds the others, and ``W_res + s·B A = W`` holds to rounding whatever the modes
    and C. With ``C = I`` (no context) ``C_λ = (1 + λ)I`` and IPM is exactly PiSSA.

    The damping keeps ``C_λ`` invertible when C is rank-deficient (fewer calibration rows
    than features): ``cond(C_λ) <= 1 + in/λ``, so one step at λ = 0.01 suffices in
    float64 for any realistic size; the doubling loop (the official code's) matters in
    float32 on wide layers. ``C_λ`` is used for both ``W C_λ`` and the inverse, as officially.

    Sign convention: the largest-magnitude entry of each kept left vector (column of U) is
    made positive, the first on a tie (flipping the right vector with it). Products
    (``s·B A``, ``W_res``) do not depend on it; conformance compares those. KPM's smallest
    singular values are the least well determined, and a repeated value at the cut makes
    ``s·B A`` depend on the SVD routine (``W_res + s·B A = W`` still holds).

    Not differentiable: an initializer. Computing dtype: the input dtype (float16/bfloat16 are
    refused; the official codes compute in float32).

    Args:
        W: the pretrained weight (out, in), torch layout ``y = x Wᵀ``.
        C: the input covariance (in, in) from ``corda_covariance`` (any positive multiple
            gives the same A, B and W_res), with a positive mean diagonal.
        r: the adapter rank, ``1 <= r <= min(out, in)``.
        mode: ``"ipm"`` (largest r components) or ``"kpm"`` (smallest r); required (PEFT's
            config defaults to ``"ipm"``, the authors' script to KPM).
        scale: ``s = lora_alpha / r`` > 0 (1.0 for PEFT's lora_alpha = r).
        damping: the initial λ, relative to ``mean(diag C)`` (0.01 in both official codes).
        inverse_tolerance: the loop's bound on ``‖C_λ C_λ⁻¹ − I‖_F`` (0.05 in both codes).

    Returns:
        A: (r, in), B: (out, r), W_res: (out, in), in the dtype of W.

    Reference: Yang et al., arXiv:2406.05223 (``SVD(WC) = UΣVᵀ``, ``Ŵ = UΣVᵀC⁻¹``); code
    iboing/CorDA, ``cordalib/decomposition.py``, ``decompose_to_adapter`` (damping loop,
    ``first_eigen`` for IPM) and huggingface/peft, ``peft/tuners/lora/corda.py``,
    ``collect_eigens_for_layer`` and ``peft/tuners/lora/layer.py``, ``LoraLayer.corda_init``
    (``S /= scaling``, ``A = √S·Vᵀ``, ``B = U·√S``, ``W − s·B A``).

    >>> import numpy as np, refimpl
    >>> W = np.array([[3.0, 0.0], [0.0, 1.0]])
    >>> C = np.diag([1.0, 4.0])     # the data excites the second input four times as much
    >>> A, B, W_res = refimpl.adapters.corda_init(W, C, 1, mode="ipm")
    >>> (B @ A).round(12) + 0.0, W_res.round(12) + 0.0   # W C_λ = diag(3.075, 4.025): input 2 leads
    (array([[0., 0.],
           [0., 1.]]), array([[3., 0.],
           [0., 0.]]))
    """
    scale = float(scale)  # a Python float: it never promotes float32 arrays to float64
    C_damped, C_inverse = damped_inverse(C, damping, inverse_tolerance)
    U, S, Vh = np.linalg.svd(W @ C_damped, full_matrices=False)
    k = S.shape[0]
    kept = slice(0, r) if mode == "ipm" else slice(k - r, k)
    U_kept, S_kept = U[:, kept], S[kept]
    V_hat_T = Vh[kept] @ C_inverse  # V̂ᵀ = Vᵀ C_λ⁻¹ (rows of the kept components)
    # the sign rule: the largest |U[o, i]| of each kept column (first on ties) becomes positive
    pivot = np.argmax(np.abs(U_kept), axis=0)
    signs = np.sign(U_kept[pivot, np.arange(U_kept.shape[1])])
    signed_root = np.sqrt(S_kept / scale) * signs  # ±√Σ'_i, Σ' = Σ_kept/s
    A = signed_root[:, None] * V_hat_T
    B = U_kept * signed_root
    W_res = W - scale * (B @ A)
    return (A, B, W_res), None


# -- known deviations of the official code (``refimpl deviations``) -----------------------------------
known_deviation(
    corda_covariance,
    name="corda-covariance-divisor-256",
    source="iboing/CorDA, cordalib/act_aware_utils.py, calib_cov_distribution",
    official="adds covariance / 256 per sample: a divisor hard-coded to the default calibration size, "
    "whatever the number N of samples run (huggingface/peft divides by the actual sample count)",
    paper="C = (1/N) Σ_s X̃_sᵀ X̃_s, the mean over the N samples (its scale does not change corda_init)",
    flag={"official_divisor": 256},
    example=Example(
        args=(np.array([[[2.0, -4.0]], [[-1.0, -2.0]]]),),
        kwargs={"sample_scaling": "abs_of_max"},
        official={"C": [[0.0078125, 0.0], [0.0, 0.03125]]},
        reference={"C": [[1.0, 0.0], [0.0, 4.0]]},
    ),
)
known_deviation(
    corda_init,
    name="peft-corda-float32-only",
    source="huggingface/peft, peft/tuners/lora/layer.py, LoraLayer.corda_init (and corda.py, which "
    "computes the covariance, its damped inverse and the SVD in float32)",
    official="refuses a float64 weight (TypeError: 'Please initialize CorDA under float32, float16, or "
    "bfloat16') and decomposes in float32 for float16/bfloat16 weights too",
    paper="the decomposition in the weight's own precision; refimpl computes float64 weights in float64",
    example=Example(
        args=(np.array([[3.0, 0.0], [0.0, 1.0]]), np.diag([1.0, 4.0]), 1),
        kwargs={"mode": "ipm"},
        official={"raises": "TypeError"},
        reference={"W_res": [[3.0, 0.0], [0.0, 0.0]]},
    ),
    convention=True,
)
