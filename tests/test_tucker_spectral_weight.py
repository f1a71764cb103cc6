"""tucker_spectral_weight: the dense complex Tucker reconstruction (tensorly's tucker_to_tensor,
no conjugation), the complex-gradient convention by finite differences on Re and Im parts,
the adjoint identity, the row-order equivariance and the use as spectral_conv2d's weight."""

import numpy as np
import pytest

import refimpl
from refimpl.layers import spectral_conv2d, tucker_spectral_weight

NAMES = ("core", "u_in", "u_out", "u_kx", "u_ky")


def _inputs(seed, I=3, O=2, K1=4, M2=3, ranks=(2, 3, 2, 2)):  # noqa: E741
    rng = np.random.default_rng(seed)
    r1, r2, r3, r4 = ranks
    shapes = [ranks, (I, r1), (O, r2), (K1, r3), (M2, r4)]
    return [rng.standard_normal((*shape, 2)) for shape in shapes]


def _complex(pairs):
    return pairs[..., 0] + 1j * pairs[..., 1]


def _official_tucker_to_tensor(core, factors):
    """NumPy transcription of tensorly's tucker_to_tensor = multi_mode_dot(core, factors):
    W = core ×_n factors[n] for every n, factors (size_n, rank_n), no conjugation (what
    tltorch's ComplexTuckerTensor.to_tensor evaluates on complex core and factors)."""
    tensor = core
    for mode, factor in enumerate(factors):
        unfolded = np.moveaxis(tensor, mode, 0).reshape(tensor.shape[mode], -1)
        new_shape = (factor.shape[0],) + tuple(np.delete(tensor.shape, mode))
        tensor = np.moveaxis((factor @ unfolded).reshape(new_shape), 0, mode)
    return tensor


def test_tucker_spectral_weight_matches_tensorly_multi_mode_dot():
    args = _inputs(0)
    weight = tucker_spectral_weight(*args)
    expected = _official_tucker_to_tensor(_complex(args[0]), [_complex(u) for u in args[1:]])
    assert weight.shape == (3, 2, 4, 3, 2)
    np.testing.assert_allclose(_complex(weight), expected, atol=1e-12)
    # and the same entrywise by the defining sum
    dense = np.einsum("abcd,ia,ob,kc,ld->iokl", *(_complex(a) for a in args))
    np.testing.assert_allclose(_complex(weight), dense, atol=1e-12)


def test_tucker_spectral_weight_rank_one_is_an_outer_product_by_hand():
    # G = i, U_in = (1, 2), U_out = (1 + i), U_kx = (1, i), U_ky = (3): W = i(1+i)·3·U_in ⊗ U_kx
    core = np.array([0.0, 1.0]).reshape(1, 1, 1, 1, 2)
    u_in = np.array([[[1.0, 0.0]], [[2.0, 0.0]]])
    u_out = np.array([[[1.0, 1.0]]])
    u_kx = np.array([[[1.0, 0.0]], [[0.0, 1.0]]])
    u_ky = np.array([[[3.0, 0.0]]])
    w = _complex(tucker_spectral_weight(core, u_in, u_out, u_kx, u_ky))[:, 0, :, 0]
    scale = 1j * (1 + 1j) * 3  # = −3 + 3i
    np.testing.assert_allclose(w, scale * np.array([[1, 1j], [2, 2j]]), atol=1e-15)


@pytest.mark.parametrize("which", range(5))
def test_tucker_spectral_weight_cotangents_are_d_re_plus_i_d_im_by_finite_differences(which):
    args = _inputs(1)
    g_weight = np.random.default_rng(2).standard_normal((3, 2, 4, 3, 2))
    _, pullback = refimpl.vjp(tucker_spectral_weight, *args)
    cotangent = pullback(g_weight)[which]
    step = 1e-6
    rng = np.random.default_rng(3)
    for _ in range(4):
        index = tuple(int(rng.integers(0, n)) for n in args[which].shape[:-1])
        for part in (0, 1):  # the real and the imaginary part, perturbed separately
            plus = [a.copy() for a in args]
            minus = [a.copy() for a in args]
            plus[which][(*index, part)] += step
            minus[which][(*index, part)] -= step
            fd = np.sum((tucker_spectral_weight(*plus) - tucker_spectral_weight(*minus)) * g_weight) / (
                2 * step
            )
            np.testing.assert_allclose(
                cotangent[(*index, part)], fd, rtol=1e-6, atol=1e-8, err_msg=NAMES[which]
            )


def test_tucker_spectral_weight_cotangent_is_the_conjugate_transpose_not_the_transpose():
    # W is complex-linear in each argument, so <W(z), W̄> = <z, z̄> over the real pairs with
    # z̄ = Aᴴ W̄; an unconjugated Aᵀ W̄ breaks the identity whenever the factors are complex
    args = _inputs(4)
    g_weight = np.random.default_rng(5).standard_normal((3, 2, 4, 3, 2))
    weight, pullback = refimpl.vjp(tucker_spectral_weight, *args)
    cotangents = pullback(g_weight)
    for which in range(5):
        np.testing.assert_allclose(
            np.sum(weight * g_weight), np.sum(args[which] * cotangents[which]), rtol=1e-12
        )
    core_unconjugated = np.einsum(
        "iokl,ia,ob,kc,ld->abcd", _complex(g_weight), *(_complex(u) for u in args[1:])
    )
    assert not np.allclose(_complex(cotangents[0]), core_unconjugated)
    core_conjugated = np.einsum(
        "iokl,ia,ob,kc,ld->abcd", _complex(g_weight), *(np.conj(_complex(u)) for u in args[1:])
    )
    np.testing.assert_allclose(_complex(cotangents[0]), core_conjugated, atol=1e-12)


def test_tucker_spectral_weight_permuting_kx_factor_rows_permutes_weight_rows():
    # the fftshift'ed row order (−m1..m1−1) is the same Tucker tensor with U_kx's rows permuted
    args = _inputs(6, K1=6)
    order = np.r_[3:6, 0:3]
    permuted = [*args[:3], args[3][order], args[4]]
    np.testing.assert_allclose(
        tucker_spectral_weight(*permuted), tucker_spectral_weight(*args)[:, :, order], atol=1e-14
    )


def test_tucker_spectral_weight_global_factorization_reduces_to_a_contracted_core():
    # a 5-mode (layers × …) Tucker tensor's layer ℓ is this op with core Σ_e U_layer[ℓ, e] G[e]
    rng = np.random.default_rng(7)
    core5 = rng.standard_normal((2, 2, 2, 2, 2)) + 1j * rng.standard_normal((2, 2, 2, 2, 2))
    u_layer = rng.standard_normal((4, 2)) + 1j * rng.standard_normal((4, 2))
    _, u_in, u_out, u_kx, u_ky = _inputs(8, ranks=(2, 2, 2, 2))
    full = _official_tucker_to_tensor(core5, [u_layer] + [_complex(u) for u in (u_in, u_out, u_kx, u_ky)])
    for layer in range(4):
        core = np.tensordot(u_layer[layer], core5, axes=(0, 0))
        core_pairs = np.stack([core.real, core.imag], axis=-1)
        w = _complex(tucker_spectral_weight(core_pairs, u_in, u_out, u_kx, u_ky))
        np.testing.assert_allclose(w, full[layer], atol=1e-12)


def test_tucker_weight_feeds_spectral_conv2d_and_chains_gradients():
    # the factorized weight is the layer's (I, O, 2·m1, m2, 2) weight; the chained VJP equals
    # finite differences of the composed map in a core entry (real and imaginary part)
    args = _inputs(9, I=2, O=2, K1=4, M2=3)
    x = np.random.default_rng(10).standard_normal((2, 2, 6, 8))
    g_y = np.random.default_rng(11).standard_normal((2, 2, 6, 8))

    def layer(a):
        return spectral_conv2d(x, tucker_spectral_weight(*a))

    weight, pull_weight = refimpl.vjp(tucker_spectral_weight, *args)
    _, pull_layer = refimpl.vjp(spectral_conv2d, x, weight)
    g_core = pull_weight(pull_layer(g_y)[1])[0]
    step = 1e-6
    for part in (0, 1):
        plus, minus = [a.copy() for a in args], [a.copy() for a in args]
        plus[0][1, 0, 1, 0, part] += step
        minus[0][1, 0, 1, 0, part] -= step
        fd = np.sum((layer(plus) - layer(minus)) * g_y) / (2 * step)
        np.testing.assert_allclose(g_core[1, 0, 1, 0, part], fd, rtol=1e-6, atol=1e-9)


def test_tucker_spectral_weight_keeps_float32():
    args = [a.astype(np.float32) for a in _inputs(12)]
    weight = tucker_spectral_weight(*args)
    assert weight.dtype == np.float32
    np.testing.assert_allclose(
        weight, tucker_spectral_weight(*(a.astype(np.float64) for a in args)), rtol=1e-4, atol=1e-4
    )
