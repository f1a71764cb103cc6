"""The public API: lookup, calling conventions, validation messages, backend dispatch."""

import numpy as np
import pytest

import refimpl
from refimpl import Backend, Impl, InputError


def test_get_unknown_op_suggests_close_matches():
    with pytest.raises(refimpl.UnknownOpError, match="did you mean layer_norm"):
        refimpl.get("layer_nrom")


def test_ops_carry_their_metadata():
    op = refimpl.get("stablemax_cross_entropy")
    assert op.family == "losses" and op.differentiable == ("z",)
    assert op.paper.arxiv == "2501.04697"
    assert "Backward" in op.__doc__
    assert [o.name for o in refimpl.ops("losses")] == sorted(o.name for o in refimpl.ops("losses"))
    assert refimpl.losses.stablemax_cross_entropy is op


def test_backends_lists_the_reference_first():
    names = refimpl.backends()
    assert names[0] == "numpy"
    assert {"numba", "cupy", "cupy-raw"} <= set(names)


def test_unknown_backend_names_the_installed_ones():
    with pytest.raises(refimpl.UnknownBackendError, match="installed: numpy"):
        refimpl.backend("jax-but-not-installed")


def test_vjp_on_the_reference_equals_vjp_with_backend_numpy():
    rng = np.random.default_rng(0)
    x, gamma, beta = rng.standard_normal((3, 5)), rng.standard_normal(5), rng.standard_normal(5)
    g = rng.standard_normal((3, 5))
    y1, pb1 = refimpl.vjp("layer_norm", x, gamma, beta)
    y2, pb2 = refimpl.vjp(refimpl.get("layer_norm"), x, gamma, beta, backend="numpy")
    np.testing.assert_array_equal(y1, y2)
    for a, b in zip(pb1(g), pb2(g), strict=True):
        np.testing.assert_array_equal(a, b)


def test_backend_get_validates_like_the_reference():
    numba = refimpl.backend("numba")
    x = np.zeros((2, 3))
    with pytest.raises(InputError, match=r"layer_norm: argument 'gamma': expected shape \(D,\) with D = 3"):
        numba.get("layer_norm")(x, np.ones(4), np.zeros(3))


def test_backend_refuses_ops_it_does_not_implement():
    only_ln = Backend("partial", {"layer_norm": refimpl.get("layer_norm").impl()})
    assert only_ln.supports("layer_norm") and not only_ln.supports("stablemax")
    with pytest.raises(refimpl.UnsupportedOpError, match="does not implement stablemax"):
        only_ln.get("stablemax")


def test_backend_with_a_differentiable_op_needs_a_backward():
    with pytest.raises(TypeError, match="no backward"):
        Backend("broken", {"layer_norm": Impl(refimpl.get("layer_norm").forward)})


def test_pullback_rejects_a_cotangent_of_the_wrong_shape_or_dtype():
    _, pullback = refimpl.vjp("stablemax", np.zeros((2, 3)))
    with pytest.raises(InputError, match="cotangent of output 'p'.*shape \\(2, 3\\)"):
        pullback(np.zeros((3, 2)))
    with pytest.raises(InputError, match="dtype float64"):
        pullback(np.zeros((2, 3), np.float32))


def test_missing_and_unexpected_arguments_are_input_errors():
    with pytest.raises(InputError, match="layer_norm: missing a required argument: 'beta'"):
        refimpl.layers.layer_norm(np.zeros((2, 3)), np.ones(3))
    with pytest.raises(InputError, match="unexpected keyword argument 'epsilon'"):
        refimpl.layers.layer_norm(np.zeros((2, 3)), np.ones(3), np.zeros(3), epsilon=1e-5)


def test_leading_dimensions_are_never_broadcast():
    with pytest.raises(InputError, match=r"argument 'y': expected shape \(B,\) with B = 2 \(from 'z'\)"):
        refimpl.losses.stablemax_cross_entropy(np.zeros((2, 3)), np.zeros(3, dtype=int))


def test_numpy_scalars_and_bools_in_hyperparameters():
    x = np.zeros((2, 3))
    refimpl.layers.layer_norm(x, np.ones(3), np.zeros(3), eps=np.float32(1e-3))
    with pytest.raises(InputError, match="argument 'eps': expected a finite real number"):
        refimpl.layers.layer_norm(x, np.ones(3), np.zeros(3), eps=True)
    with pytest.raises(InputError, match="compute_in_float64': expected a bool"):
        refimpl.losses.stablemax_cross_entropy(x, np.zeros(2, dtype=int), compute_in_float64=1)


def test_cupy_backend_refuses_numpy_arrays_with_a_clear_message():
    cupy_backend = refimpl.backend("cupy")
    with pytest.raises(InputError, match="expected a cupy array"):
        cupy_backend.get("layer_norm")(np.zeros((2, 3)), np.ones(3), np.zeros(3))
