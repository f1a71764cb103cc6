"""VAR multi-scale VQ loss and residual quantizer on CuPy.

Mirrors ``refimpl/quantization_sparsity/var_quantize.py``.

``multiscale_vq_loss``: one fused squared-difference reduction, one fused backward: the
value ``(1 + β)/(Kn) Σ_k ‖f̂_k − f‖²`` (float64 sum) and the stop-gradient backward
``f̂̄_k = s(f̂_k − f)``, ``f̄ = −βs Σ_k (f̂_k − f)`` with s = 2L̄/(Kn).

``multiscale_residual_quantize``: float64 throughout, as the reference. The resizes
``A r Aᵀ`` / ``U e Uᵀ`` (the reference's ``area_matrix`` / ``bicubic_matrix``, moved to the
device) are batched ``matmul``s over the B·C planes; φ's 3×3 convolution is one ``matmul``
with the (C·9, B·H·W) matrix of the nine shifted copies of the padded map. The nearest
codeword comes from residual_vq's chunked direct-difference search (float64, the smallest
index among the minima: ties as the reference's ``argmin``); the cosine search is the
reference's ``_nearest_cosine`` (NumPy's functions dispatch to CuPy). φ's blend and the
f̂ / residual updates are one fused kernel. The backward follows the reference: a
``matmul`` per weight gradient, the transposed convolution as the correlation of s with the
flipped, channel-swapped kernel, the bicubic adjoint as the resize by Uᵀ and an ``add.at``
scatter of the codeword cotangents (``cupyx.scatter_add`` semantics on the device).
"""

from __future__ import annotations

from types import SimpleNamespace

from refimpl.authoring import Impl
from refimpl.quantization_sparsity.var_quantize import (
    VAR_PATCH_NUMS,
    _nearest_cosine,
    area_matrix,
    bicubic_matrix,
    phi_positions,
)

from .._fuse import kernel_set, xp_of
from .residual_vq import _nearest
from .residual_vq import kernels_for as search_kernels_for


def _kernels(xp, fuse):
    @fuse
    def squared_difference(f_hat, f):
        difference = f_hat.astype(xp.float64) - f.astype(xp.float64)
        return difference * difference

    @fuse
    def scaled_difference(f_hat, f, scale):
        return (scale * (f_hat.astype(xp.float64) - f.astype(xp.float64))).astype(f.dtype)

    @fuse
    def refine(h, conv, bias, rho):
        # φ(h) = (1 − ρ)h + ρ(conv(h) + b)
        return (1.0 - rho) * h + rho * (conv + bias)

    @fuse
    def blend_adjoint(s, conv_adjoint, rho):
        # h̄ = (1 − ρ)s + ρ·convᵀ(s)
        return (1.0 - rho) * s + rho * conv_adjoint

    return SimpleNamespace(
        squared_difference=squared_difference,
        scaled_difference=scaled_difference,
        refine=refine,
        blend_adjoint=blend_adjoint,
    )


kernels_for = kernel_set(_kernels)


def multiscale_vq_loss_forward(f, f_hats, *, beta=0.25):
    xp = xp_of(f)
    squares = kernels_for(f).squared_difference(f_hats, f[None]).sum()
    loss = (1.0 + beta) / (f_hats.shape[0] * f.size) * squares
    return xp.asarray(loss, dtype=f.dtype), (f, f_hats, beta)


def multiscale_vq_loss_backward(residuals, g_loss):
    f, f_hats, beta = residuals
    xp = xp_of(f)
    scale = 2.0 * float(g_loss) / f_hats.size
    g_f_hats = kernels_for(f).scaled_difference(f_hats, f[None], scale)
    total = (f_hats.astype(xp.float64) - f[None].astype(xp.float64)).sum(axis=0)
    g_f = (-beta * scale * total).astype(f.dtype)
    return g_f, g_f_hats


# -- multiscale_residual_quantize --------------------------------------------------------------
def _resize(x, matrix):
    """``M x Mᵀ`` over the last two axes of x (..., n, n): batched matmuls over the planes
    (along W, then along H)."""
    return matrix @ (x @ matrix.T)


def _shifted_columns(xp, x):
    """The nine shifted copies of the zero-padded map as a (C·9, B·H·W) matrix: rows
    (i, dy, dx), columns (b, y, x); row (i, dy, dx) holds x[b, i, y+dy−1, x+dx−1]."""
    batch, channels, height, width = x.shape
    padded = xp.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    shifts = [padded[:, :, dy : dy + height, dx : dx + width] for dy in range(3) for dx in range(3)]
    return xp.stack(shifts, axis=2).transpose(1, 2, 0, 3, 4).reshape(channels * 9, -1)


def _correlate(xp, kernel, x):
    """Σ_{i,dy,dx} kernel[o, i, dy, dx]·x[b, i, y+dy−1, x+dx−1]: one matmul, (B, O, H, W)."""
    out = kernel.reshape(kernel.shape[0], -1) @ _shifted_columns(xp, x)  # (O, B·H·W)
    return out.reshape(kernel.shape[0], x.shape[0], *x.shape[2:]).transpose(1, 0, 2, 3)


def multiscale_residual_quantize_forward(
    f, codebook, phi_weights, phi_biases, *, patch_nums=None, quant_resi=0.5, using_znorm=False
):
    xp = xp_of(f)
    k = kernels_for(f)
    dtype = f.dtype
    batch, channels, height, _ = f.shape
    scales = VAR_PATCH_NUMS if patch_nums is None else tuple(int(n) for n in patch_nums)
    count = len(scales)
    positions = phi_positions(count, phi_weights.shape[0])
    codes = codebook.astype(xp.float64)
    weights, biases = phi_weights.astype(xp.float64), phi_biases.astype(xp.float64)
    rho = float(quant_resi)
    rest = f.astype(xp.float64)  # r_0 = f (detached: no gradient from f_hats to f)
    f_hat = xp.zeros_like(rest)
    f_hats = xp.empty((count, *f.shape), dtype=dtype)
    indices, chosen, upsampled, matrices = [], [], [], []
    for scale, size in enumerate(scales):
        last = scale == count - 1
        z = rest if last else _resize(rest, xp.asarray(area_matrix(height, size)))  # (B, C, pn, pn)
        z_rows = z.transpose(0, 2, 3, 1).reshape(-1, channels)  # rows (b, y, x)
        if using_znorm:
            idx = _nearest_cosine(z_rows, codes)
        else:
            idx = _nearest(xp, search_kernels_for(z_rows), z_rows, codes)
        e = codes[idx].reshape(batch, size, size, channels).transpose(0, 3, 1, 2)
        matrix = None if last else xp.asarray(bicubic_matrix(size, height))
        h = e if last else _resize(e, matrix)
        p = positions[scale]
        refined = k.refine(h, _correlate(xp, weights[p], h), biases[p][None, :, None, None], rho)
        f_hat = f_hat + refined
        rest = rest - refined
        f_hats[scale] = f_hat
        indices.append(idx.reshape(batch, size * size))
        chosen.append(idx)
        upsampled.append(h)
        matrices.append(matrix)
    residuals = (chosen, upsampled, matrices, positions, weights, rho, codebook.shape, dtype)
    return (xp.concatenate(indices, axis=1).astype(xp.int64), f_hats[-1].copy(), f_hats), residuals


def multiscale_residual_quantize_backward(residuals, cotangents):
    chosen, upsampled, matrices, positions, weights, rho, codebook_shape, dtype = residuals
    _, g_f_hat, g_f_hats = cotangents
    xp = xp_of(weights)
    k = kernels_for(weights)
    shape = upsampled[-1].shape
    channels = codebook_shape[1]
    g_f = xp.zeros(shape) if g_f_hat is None else g_f_hat.astype(xp.float64)  # 1. straight through
    g_codebook = xp.zeros(codebook_shape)
    g_weights = xp.zeros_like(weights)
    g_biases = xp.zeros(weights.shape[:2])
    if g_f_hats is not None:
        # 2. s_j = Σ_{k ≥ j} f̂̄_k: reverse cumulative sum over the scales
        g_refined = xp.cumsum(g_f_hats.astype(xp.float64)[::-1], axis=0)[::-1]
        # the transposed convolutions: kernels flipped in (dy, dx), channel axes swapped
        adjoint_kernels = weights[:, :, :, ::-1, ::-1].transpose(0, 2, 1, 3, 4)
        for j, (h, p) in enumerate(zip(upsampled, positions, strict=True)):
            s = g_refined[j]
            # 3. φ(h) = (1 − ρ)h + ρ(conv(h; W_p) + b_p)
            s_planes = s.transpose(1, 0, 2, 3).reshape(channels, -1)  # (O, B·H·W)
            g_biases[p] += rho * s_planes.sum(axis=1)
            g_weights[p] += rho * (s_planes @ _shifted_columns(xp, h).T).reshape(weights.shape[1:])
            g_h = k.blend_adjoint(s, _correlate(xp, adjoint_kernels[p], s), rho)
            # 4. adjoint of the bicubic upsampling Uᵀ h̄ U (identity at the last scale)
            g_e = g_h if matrices[j] is None else _resize(g_h, matrices[j].T)
            # 5. scatter-add into the chosen codewords
            xp.add.at(g_codebook, chosen[j], g_e.transpose(0, 2, 3, 1).reshape(-1, channels))
    return tuple(g.astype(dtype, copy=False) for g in (g_f, g_codebook, g_weights, g_biases))


IMPLS = {
    "multiscale_vq_loss": Impl(multiscale_vq_loss_forward, multiscale_vq_loss_backward),
    "multiscale_residual_quantize": Impl(
        multiscale_residual_quantize_forward, multiscale_residual_quantize_backward
    ),
}
