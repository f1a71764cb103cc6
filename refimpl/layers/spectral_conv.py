"""Fourier neural operator spectral convolution, its Tucker-factorized weight and the irfft2
adjoint (Multi-Grid Tensorized Fourier Neural Operator, Kossaifi et al.)."""

from __future__ import annotations

import numpy as np

from ..authoring import ArgumentError, FloatArray, OneOf, Paper, array_namespace, op

__all__ = ["irfft2_adjoint", "spectral_conv2d", "tucker_spectral_weight"]

PAPER = Paper(
    "Multi-Grid Tensorized Fourier Neural Operator for High-Resolution PDEs",
    arxiv="2310.00120",
    year=2023,
    code="neuraloperator/neuraloperator",
)

#: NumPy's ``norm=`` names. ``irfft2(·, norm=n)``'s adjoint is an ``rfft2`` with the
#: normalization on the other side, and the other way round: the scale factors of an
#: unnormalized transform and of its adjoint are the same number.
SWAPPED_NORM = {"backward": "forward", "ortho": "ortho", "forward": "backward"}


# --- shared helpers (array-library generic: the CuPy backend runs them on cupy arrays) ---


def column_multiplicity(width, xp=np, dtype=np.float64):
    """``c_k`` for the ``width // 2 + 1`` columns of an rfft over ``width`` points: how many
    columns of the full FFT the kept column ``k`` stands for. 1 for the DC column and, when
    ``width`` is even, for the Nyquist column (self-conjugate); 2 for every other column."""
    c = xp.full(width // 2 + 1, 2.0, dtype=dtype)
    c[0] = 1.0
    if width % 2 == 0:
        c[-1] = 1.0
    return c


def irfft2_adjoint_spectrum(v, norm, xp=np):
    """The adjoint of ``u ↦ irfft2(u, s=v.shape[-2:], norm=norm)`` applied to the real field
    ``v``, as a complex array (..., H, W//2 + 1): ``c ⊙ rfft2(v, norm=SWAPPED_NORM[norm])``."""
    width = v.shape[-1]
    c = column_multiplicity(width, xp, np.float64 if v.dtype == np.float64 else np.float32)
    return xp.fft.rfft2(v, norm=SWAPPED_NORM[norm]) * c


def rfft2_adjoint_field(u, shape, norm, xp=np):
    """The adjoint of ``x ↦ rfft2(x, norm=norm)`` (x real of trailing shape ``shape``) applied
    to the complex spectrum ``u`` (..., H, W//2 + 1): ``irfft2(u / c, s=shape,
    norm=SWAPPED_NORM[norm])``, a real array."""
    c = column_multiplicity(shape[-1], xp, np.float64 if u.real.dtype == np.float64 else np.float32)
    return xp.fft.irfft2(u / c, s=shape, norm=SWAPPED_NORM[norm])


def keep_modes(spectrum, m1, m2, xp=np):
    """The kept low modes of an rfft2 output (..., H, W//2 + 1): rows ``[:m1]`` then rows
    ``[H - m1:]`` (the negative frequencies −m1..−1), columns ``[:m2]`` → (..., 2·m1, m2)."""
    height = spectrum.shape[-2]
    return xp.concatenate([spectrum[..., :m1, :m2], spectrum[..., height - m1 :, :m2]], axis=-2)


def place_modes(modes, height, columns, xp=np):
    """The adjoint of :func:`keep_modes` (its right inverse too): the (..., 2·m1, m2) block
    written back into rows ``[:m1]`` and ``[H - m1:]``, columns ``[:m2]`` of a zero spectrum
    (..., H, columns)."""
    m1, m2 = modes.shape[-2] // 2, modes.shape[-1]
    spectrum = xp.zeros(modes.shape[:-2] + (height, columns), dtype=modes.dtype)
    spectrum[..., :m1, :m2] = modes[..., :m1, :]
    spectrum[..., height - m1 :, :m2] = modes[..., m1:, :]
    return spectrum


def as_complex(pairs):
    """A complex array from real pairs on the last axis (``torch.view_as_real``'s layout)."""
    return pairs[..., 0] + 1j * pairs[..., 1]


def as_pairs(z, dtype, xp=np):
    """Real pairs (…, 2) = (Re z, Im z) in ``dtype``: the layout of every complex argument,
    output and cotangent here."""
    return xp.stack([z.real, z.imag], axis=-1).astype(dtype, copy=False)


# --- irfft2_adjoint ---


@op(
    inputs={"v": FloatArray("...", "H", "W"), "norm": OneOf("backward", "ortho", "forward")},
    outputs=("u",),
    differentiable=("v",),
)
def irfft2_adjoint(v, *, norm="backward"):
    r"""The adjoint of ``irfft2(·, s=(H, W), norm=norm)``: the map a hand VJP of a Fourier layer
    applies to the output cotangent (it is NOT ``rfft2``).

    ``A(u) = numpy.fft.irfft2(u, s=(H, W), norm=norm)`` maps a complex half-spectrum
    u (..., H, W//2 + 1) to a real field (..., H, W). It is linear over the reals in
    (Re u, Im u), and its adjoint under the real inner product ``⟨u, u'⟩ = Re Σ conj(u)·u'`` is

        A*(v) = c ⊙ rfft2(v, norm=n*),    c_k = 1 (k = 0; k = W/2 when W is even), 2 otherwise,

    with ``n*`` the swapped normalization (``"backward"`` ↔ ``"forward"``, ``"ortho"`` ↔
    ``"ortho"``), so that ``⟨A u, v⟩ = Re Σ conj(u)·A*(v)`` for every u and real v.

    Derivation. ``irfft2 = irfft_last ∘ ifft_rows``. The complex ifft over rows is complex
    linear with adjoint ``fft_rows`` times the same scale. The 1-D ``irfft`` over W points
    reads each kept column k once and counts it for itself and its mirror column W − k:
    unnormalized, ``irfft(u)_n = Σ_k c_k Re(u_k e^{2πikn/W})`` (numpy's c2r ignores Im u_0 and,
    W even, Im u_{W/2}). Hence ``∂⟨irfft(u), v⟩/∂Re u_k = c_k Σ_n v_n cos(2πkn/W) = c_k Re
    rfft(v)_k`` and ``∂/∂Im u_k = −c_k Σ_n v_n sin(2πkn/W) = c_k Im rfft(v)_k`` (both zero-
    imaginary at the self-conjugate columns, where rfft(v) is real). The scale: ``norm``
    "backward" puts 1/(HW) on the inverse, so its adjoint is the forward transform with
    1/(HW), i.e. ``rfft2(·, norm="forward")``; "ortho" is 1/√(HW) both ways.

    Complex outputs are real pairs on a trailing axis of 2 (``torch.view_as_real``'s layout):
    ``u[..., 0] = Re``, ``u[..., 1] = Im``.

    Backward. The map is linear, so its VJP is its own adjoint, ``A`` itself: for the
    cotangent ``ū`` (pairs), ``v̄ = irfft2(ū[..., 0] + i ū[..., 1], s=(H, W), norm=norm)``.

    Args:
        v: real field (..., H, W).
        norm: NumPy's normalization name of the irfft2 being adjointed (default
            ``"backward"``, NumPy's and the legacy neuraloperator ``SpectralConv``'s default).

    Returns:
        u: (..., H, W//2 + 1, 2), the spectrum ``A*(v)`` as (Re, Im) pairs, v's dtype.

    Reference: Kossaifi et al., *Multi-Grid Tensorized Fourier Neural Operator for
    High-Resolution PDEs*, arXiv:2310.00120 (the layer whose VJP needs it); the identity is
    checked numerically in the tests.

    >>> import numpy as np, refimpl
    >>> u = refimpl.layers.irfft2_adjoint(np.array([[1.0, 2.0, 3.0, 4.0]]))
    >>> u[..., 0].round(4), u[..., 1].round(4)  # c = (1, 2, 1); rfft/4 = (2.5, -0.5+0.5i, -0.5)
    (array([[ 2.5, -1. , -0.5]]), array([[0., 1., 0.]]))
    """
    xp = array_namespace(v)
    u = irfft2_adjoint_spectrum(v, norm, xp)
    return as_pairs(u, v.dtype, xp), (v.shape[-2:], norm, v.dtype)


@irfft2_adjoint.defvjp
def irfft2_adjoint_backward(residuals, g_u):
    shape, norm, dtype = residuals
    xp = array_namespace(g_u)
    g_v = xp.fft.irfft2(as_complex(g_u), s=shape, norm=norm)
    return (g_v.astype(dtype, copy=False),)


# --- spectral_conv2d ---


def _check_spectral_conv2d(arguments):
    x, weight = arguments["x"], arguments["weight"]
    height, width = x.shape[-2:]
    k1, m2 = weight.shape[2], weight.shape[3]
    if k1 == 0 or k1 % 2:
        raise ArgumentError(
            "weight",
            "axis 2 of size 2·m1 with m1 >= 1 (rows [:m1] then rows [H-m1:])",
            f"size {k1}",
        )
    if k1 > height:
        raise ArgumentError(
            "weight",
            f"2·m1 <= H = {height} (the kept row blocks [:m1] and [H-m1:] must not overlap)",
            f"2·m1 = {k1}",
        )
    if m2 == 0 or m2 > width // 2 + 1:
        raise ArgumentError("weight", f"1 <= m2 <= W//2 + 1 = {width // 2 + 1} kept columns", f"m2 = {m2}")


@op(
    inputs={
        "x": FloatArray("B", "I", "H", "W"),
        "weight": FloatArray("I", "O", "K1", "M2", 2),
        "norm": OneOf("backward", "ortho", "forward"),
    },
    outputs=("y",),
    differentiable=("x", "weight"),
    check=_check_spectral_conv2d,
)
def spectral_conv2d(x, weight, *, norm="backward"):
    r"""Fourier neural operator layer: multiply the low Fourier modes of the input by a learned
    complex weight per mode, channel-mixing, and transform back.

    The kernel integral ``∫ κ(x − y) v(y) dy`` is a convolution, diagonal in Fourier space;
    the FNO parameterizes it directly by its low-frequency coefficients, so one weight acts at
    any grid resolution (discretization invariance).

    Forward, with ``m1 = K1/2`` and ``m2 = M2`` taken from the weight's shape::

        x̂ = rfft2(x, norm=norm)                               (B, I, H, W//2 + 1), complex
        x̂_k = x̂[..., concat(rows [:m1], rows [H−m1:]), cols [:m2]]   (B, I, 2·m1, m2)
        ŷ_k[b, o, k] = Σ_i x̂_k[b, i, k] · w[i, o, k]          (complex, per mode k)
        ŷ = ŷ_k placed back in those rows/columns, zeros elsewhere   (B, O, H, W//2 + 1)
        y = irfft2(ŷ, s=(H, W), norm=norm)                    (B, O, H, W), real

    Mode truncation as in the official code: ``neuralop/layers/legacy_spectral_convolution.py``,
    ``SpectralConv2d.forward`` keeps ``slices0 = [:, :, :half_n_modes[0], :half_n_modes[1]]``
    (rows ``[:m1]``) with weight ``2·indices`` and ``slices1 = [:, :, -half_n_modes[0]:,
    :half_n_modes[1]]`` (rows ``[−m1:]``) with weight ``2·indices + 1``. Here the two weights are
    one tensor along axis 2: ``weight[:, :, :m1]`` is the first, ``weight[:, :, m1:]`` the
    second. ``2·m1 > H`` (overlapping blocks, where the official code lets the second block
    overwrite the first) is refused. ``norm`` follows NumPy's names; its default
    ``"backward"`` is the ``fft_norm`` default in that file's ``SpectralConv.__init__`` signature
    (its class docstring says 'forward'; the signature is what runs). The
    layer's bias (added after the irfft2 in the official code) is a separate addition, not
    part of this op.

    The complex weight is given as real pairs (``torch.view_as_real``'s layout): ``weight``
    (I, O, 2·m1, m2, 2), ``w = weight[..., 0] + i·weight[..., 1]``.

    Backward. Let ``ȳ = ∂L/∂y`` (real) and write every complex cotangent in the convention
    ``z̄ = ∂L/∂Re z + i·∂L/∂Im z`` (PyTorch's for a real loss). Step by step, each linear map
    is replaced by its adjoint under ``⟨u, u'⟩ = Re Σ conj(u)·u'``:

    1. ``irfft2``: ``ŷ̄ = irfft2*(ȳ) = c ⊙ rfft2(ȳ, norm=n*)`` (see :func:`irfft2_adjoint`:
       c_k = 1 for the DC/Nyquist columns, 2 otherwise; n* the swapped norm).
    2. zero-filling: its adjoint keeps the same modes, ``ŷ̄_k = keep(ŷ̄)``.
    3. the per-mode product ``ŷ_k = Σ_i x̂_k w``: for ``z = a·w``, ``∂L/∂Re w = Re(conj(z̄)·a)``
       and ``∂L/∂Im w = Re(conj(z̄)·i a) = Im(z̄·conj(a))``, i.e. ``w̄ = conj(a)·z̄``; likewise
       ``ā = z̄·conj(w)``. Summed::

           w̄[i, o, k]   = Σ_b conj(x̂_k[b, i, k]) · ŷ̄_k[b, o, k]
           x̂̄_k[b, i, k] = Σ_o ŷ̄_k[b, o, k] · conj(w[i, o, k])

    4. the truncation's adjoint places ``x̂̄_k`` into a zero spectrum; ``rfft2``'s adjoint is
       ``rfft2*(u) = irfft2(u / c, s=(H, W), norm=n*)``, so ``x̄ = irfft2(place(x̂̄_k)/c, n*)``.

    The weight cotangent is returned in the weight's pair layout:
    ``weight̄[..., 0] = Re w̄ = ∂L/∂Re w`` and ``weight̄[..., 1] = Im w̄ = ∂L/∂Im w``, which is
    what central differences on ``weight[..., 0]`` and ``weight[..., 1]`` separately give.
    Modes whose imaginary part the irfft2 discards (the DC and, for even sizes, Nyquist
    self-conjugate entries) get a zero imaginary gradient.

    Args:
        x: real input (B, I, H, W).
        weight: complex spectral weight as pairs (I, O, 2·m1, m2, 2), 2·m1 <= H,
            m2 <= W//2 + 1.
        norm: NumPy's FFT normalization of both transforms (``"backward"``: 1/(HW) on the
            inverse; ``"ortho"``; ``"forward"``); default ``"backward"`` (legacy
            neuraloperator ``SpectralConv``'s ``fft_norm``).

    Returns:
        y: (B, O, H, W), x's dtype.

    Reference: Kossaifi, Kovachki, Azizzadenesheli and Anandkumar, *Multi-Grid Tensorized
    Fourier Neural Operator for High-Resolution PDEs*, arXiv:2310.00120; Li et al., *Fourier
    Neural Operator for Parametric PDEs*, arXiv:2010.08895; official code
    neuraloperator/neuraloperator ``neuralop/layers/legacy_spectral_convolution.py``.

    >>> import numpy as np, refimpl
    >>> x = np.arange(8.0).reshape(1, 1, 2, 4)
    >>> weight = np.zeros((1, 1, 2, 1, 2))          # m1 = m2 = 1
    >>> weight[0, 0, 0, 0, 0] = 2.0                 # only the DC mode, times 2
    >>> refimpl.layers.spectral_conv2d(x, weight)     # 2 × mean(x) = 7 everywhere
    array([[[[7., 7., 7., 7.],
             [7., 7., 7., 7.]]]])
    """
    xp = array_namespace(x)
    height, width = x.shape[-2:]
    m1, m2 = weight.shape[2] // 2, weight.shape[3]
    w = as_complex(weight)
    x_hat = xp.fft.rfft2(x, norm=norm)
    x_modes = keep_modes(x_hat, m1, m2, xp)
    y_modes = xp.einsum("bikl,iokl->bokl", x_modes, w)
    y_hat = place_modes(y_modes, height, width // 2 + 1, xp)
    y = xp.fft.irfft2(y_hat, s=(height, width), norm=norm)
    return y.astype(x.dtype, copy=False), (x_modes, w, (height, width), norm, x.dtype)


@spectral_conv2d.defvjp
def spectral_conv2d_backward(residuals, g_y):
    x_modes, w, shape, norm, dtype = residuals
    xp = array_namespace(g_y)
    m1, m2 = w.shape[2] // 2, w.shape[3]
    g_y_hat = irfft2_adjoint_spectrum(g_y, norm, xp)  # step 1
    g_y_modes = keep_modes(g_y_hat, m1, m2, xp)  # step 2
    g_w = xp.einsum("bikl,bokl->iokl", xp.conj(x_modes), g_y_modes)  # step 3
    g_x_modes = xp.einsum("bokl,iokl->bikl", g_y_modes, xp.conj(w))
    g_x_hat = place_modes(g_x_modes, shape[0], shape[1] // 2 + 1, xp)  # step 4
    g_x = rfft2_adjoint_field(g_x_hat, shape, norm, xp)
    return g_x.astype(dtype, copy=False), as_pairs(g_w, dtype, xp)


# --- tucker_spectral_weight ---


def mode_product(tensor, matrix, mode, xp=np):
    """``T ×_n U``: axis ``mode`` of ``tensor`` (size r) contracted with axis 1 of ``matrix``
    (s, r); the result has size s on axis ``mode`` and the other axes unchanged."""
    return xp.moveaxis(xp.tensordot(matrix, tensor, axes=(1, mode)), 0, mode)


def factor_cotangent(projected, core_conj, mode, xp=np):
    """``Ū_n[s, r] = Σ projected[..., s, ...] · conj(G)[..., r, ...]`` over every axis but ``mode``:
    the cotangent of factor n from ``W̄`` projected through the other modes' ``U_mᴴ``."""
    others = [axis for axis in range(core_conj.ndim) if axis != mode]
    return xp.tensordot(projected, core_conj, axes=(others, others))


def tucker_weight_backward(g_w, core, factors, xp=np):
    """Complex cotangents of the core and the four factors for ``W = G ×1 U1 ×2 U2 ×3 U3 ×4 U4``
    (complex arrays in, complex arrays out; convention ∂L/∂Re + i ∂L/∂Im). Every product is a
    projection ``× U_mᴴ``; the projections through two modes are shared."""
    adjoints = [xp.conj(u).T for u in factors]  # U_mᴴ (R_m, size_m)
    core_conj = xp.conj(core)
    # modes 1, 2: project W̄ through modes 4 and 3 once, then through the remaining one
    through_43 = mode_product(mode_product(g_w, adjoints[3], 3, xp), adjoints[2], 2, xp)
    through_432 = mode_product(through_43, adjoints[1], 1, xp)  # (I, R2, R3, R4)
    through_431 = mode_product(through_43, adjoints[0], 0, xp)  # (R1, O, R3, R4)
    # modes 3, 4: project W̄ through modes 1 and 2 once, then through the remaining one
    through_12 = mode_product(mode_product(g_w, adjoints[0], 0, xp), adjoints[1], 1, xp)
    through_124 = mode_product(through_12, adjoints[3], 3, xp)  # (R1, R2, K1, R4)
    through_123 = mode_product(through_12, adjoints[2], 2, xp)  # (R1, R2, R3, M2)
    g_core = mode_product(through_432, adjoints[0], 0, xp)
    g_factors = [
        factor_cotangent(through_432, core_conj, 0, xp),
        factor_cotangent(through_431, core_conj, 1, xp),
        factor_cotangent(through_124, core_conj, 2, xp),
        factor_cotangent(through_123, core_conj, 3, xp),
    ]
    return g_core, g_factors


@op(
    inputs={
        "core": FloatArray("R1", "R2", "R3", "R4", 2),
        "u_in": FloatArray("I", "R1", 2),
        "u_out": FloatArray("O", "R2", 2),
        "u_kx": FloatArray("K1", "R3", 2),
        "u_ky": FloatArray("M2", "R4", 2),
    },
    outputs=("weight",),
    differentiable=("core", "u_in", "u_out", "u_kx", "u_ky"),
)
def tucker_spectral_weight(core, u_in, u_out, u_kx, u_ky):
    r"""Complex Tucker-factorized spectral weight of the tensorized FNO (TFNO): a small complex
    core times one complex factor matrix per mode, giving the dense (I, O, 2·m1, m2) weight
    that :func:`spectral_conv2d` takes.

    The dense FNO weight has I·O·2·m1·m2 complex entries; TFNO stores it as a Tucker tensor
    whose core (R1, R2, R3, R4) and factors are much smaller, and contracts them back. The map is
    multilinear in (core, factors) and complex-linear (holomorphic) in each of them.

    Forward (complex, ``z = pairs[..., 0] + i·pairs[..., 1]`` for every argument)::

        W = G ×1 U_in ×2 U_out ×3 U_kx ×4 U_ky
        W[i, o, k, l] = Σ_{a,b,c,d} G[a, b, c, d] · U_in[i, a] · U_out[o, b] · U_kx[k, c] · U_ky[l, d]

    ``×n`` is the mode-n product (axis n of the core contracted with the factor's rank axis),
    evaluated one mode at a time (4 tensordots, BLAS): ``((G ×4 U_ky) ×3 U_kx) ×2 U_out ×1 U_in``.
    No factor is conjugated: this is tensorly's ``tucker_to_tensor`` (``multi_mode_dot``), which
    tltorch's ``ComplexTuckerTensor`` (``tltorch/factorized_tensors/complex_factorized_tensors.py``,
    ``ComplexTuckerTensor(ComplexHandler, TuckerTensor, name='ComplexTucker')``, core and factors
    stored as ``torch.view_as_real`` pairs) uses for ``to_tensor``; neuraloperator builds its
    spectral weight with ``FactorizedTensor.new(..., factorization="ComplexTucker")``.

    The kx mode is the layer's row-mode axis: rows ``[0, m1)`` of ``U_kx`` give the weight of the
    kept rows ``[:m1]``, rows ``[m1, 2·m1)`` those of rows ``[H − m1:]`` (the layout of
    :func:`spectral_conv2d`). A layout with the rows in another order (fftshift'ed, −m1..m1−1) is
    the same Tucker tensor with the rows of ``U_kx`` permuted (Tucker is equivariant: permuting
    the rows of a factor permutes that axis of W).

    Global (across-layers) factorization (MG-TFNO, one Tucker tensor shared by all layers): its
    extra layer mode is not part of this op, which is the per-layer 4-mode map. A 5-mode tensor
    ``G ×0 U_layer ×1 U_in … ×4 U_ky`` gives layer ℓ's weight as this op applied to the core
    ``Σ_e U_layer[ℓ, e] G[e, …]``; that reduction is left to the caller.

    Backward. Write complex cotangents as ``z̄ = ∂L/∂Re z + i·∂L/∂Im z`` (PyTorch's convention).
    For a complex-linear map ``W = A z`` the cotangent is ``z̄ = Aᴴ W̄`` (the real-pair adjoint of
    complex multiplication ``w = a·z`` is ``z̄ = conj(a)·w̄``, as in :func:`spectral_conv2d`).
    W is complex-linear in each of G, U_in, U_out, U_kx, U_ky with the others fixed, so:

    1. core: ``A = ⊗ of the four factors``, hence
       ``Ḡ = W̄ ×1 U_inᴴ ×2 U_outᴴ ×3 U_kxᴴ ×4 U_kyᴴ``
       (``×n Uᴴ`` contracts axis n of W̄ with the rows of U, conjugated).
    2. factor n (e.g. U_in): ``W = U_in · M`` on the mode-1 unfolding, ``M = unfold_1(G ×2 U_out
       ×3 U_kx ×4 U_ky)``, so ``Ū_in = W̄_(1) · Mᴴ``, i.e.
       ``Ū_in[i, a] = Σ_{b,c,d} (W̄ ×2 U_outᴴ ×3 U_kxᴴ ×4 U_kyᴴ)[i, b, c, d] · conj(G[a, b, c, d])``
       (``Σ_{o,k,l} W̄[i,o,k,l] conj(U_out[o,b] U_kx[k,c] U_ky[l,d])`` is the projection, then the
       core's rank axes are contracted). The same with the roles of the modes exchanged gives
       ``Ū_out``, ``Ū_kx``, ``Ū_ky``.

    The code projects W̄ down (the cheap direction: every projection shrinks a mode to its rank)
    and shares the two-mode projections ``W̄ ×4 U_kyᴴ ×3 U_kxᴴ`` (for Ū_in, Ū_out, Ḡ) and
    ``W̄ ×1 U_inᴴ ×2 U_outᴴ`` (for Ū_kx, Ū_ky). Each cotangent is returned as pairs
    ``(Re z̄, Im z̄) = (∂L/∂Re z, ∂L/∂Im z)``, what central differences on the real and imaginary
    entries give.

    Args:
        core: G (R1, R2, R3, R4, 2), complex pairs.
        u_in: U_in (I, R1, 2), input-channel factor.
        u_out: U_out (O, R2, 2), output-channel factor.
        u_kx: U_kx (K1, R3, 2), row-mode factor; K1 = 2·m1 for :func:`spectral_conv2d`.
        u_ky: U_ky (M2, R4, 2), column-mode factor.

    Returns:
        weight: W (I, O, K1, M2, 2), complex pairs, core's dtype.

    Reference: Kossaifi, Kovachki, Azizzadenesheli and Anandkumar, *Multi-Grid Tensorized Fourier
    Neural Operator for High-Resolution PDEs*, arXiv:2310.00120 (TFNO, Tucker factorization of
    the spectral weight); Kolda and Bader, *Tensor Decompositions and Applications* (mode-n
    product); official code neuraloperator/neuraloperator with tensorly/tensorly-torch
    (``ComplexTucker``).

    >>> import numpy as np, refimpl
    >>> one = lambda *shape: np.stack([np.ones(shape), np.zeros(shape)], axis=-1)
    >>> core = one(1, 1, 1, 1) * 2.0                      # G = 2
    >>> u_in = one(2, 1); u_in[1, 0] = (0.0, 1.0)         # U_in = (1, i)ᵀ
    >>> w = refimpl.layers.tucker_spectral_weight(core, u_in, one(1, 1), one(2, 1), one(1, 1))
    >>> w[:, 0, :, 0, 0], w[:, 0, :, 0, 1]                # W[i] = 2·U_in[i]: (2, 2i) on both rows
    (array([[2., 2.],
           [0., 0.]]), array([[0., 0.],
           [2., 2.]]))
    """
    xp = array_namespace(core)
    g = as_complex(core)
    factors = [as_complex(u) for u in (u_in, u_out, u_kx, u_ky)]
    w = g
    for mode in (3, 2, 1, 0):
        w = mode_product(w, factors[mode], mode, xp)
    return as_pairs(w, core.dtype, xp), (g, factors, core.dtype)


@tucker_spectral_weight.defvjp
def tucker_spectral_weight_backward(residuals, g_weight):
    g, factors, dtype = residuals
    xp = array_namespace(g_weight)
    g_core, g_factors = tucker_weight_backward(as_complex(g_weight), g, factors, xp)
    return (as_pairs(g_core, dtype, xp), *(as_pairs(u, dtype, xp) for u in g_factors))
