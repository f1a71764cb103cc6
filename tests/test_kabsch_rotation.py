"""DR-Tune's Kabsch rotation: planted rotations, the official rot_align, centring and the
uniqueness of R X_c where R itself is not unique."""

import numpy as np
import pytest

from refimpl.regularizers import kabsch_rotation


def _rotation(rng, d):
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def _normalize(x):
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _official_rot_align(pre, down):
    """weeknan/DR-Tune model.py rot_align (after semantic_calibration's normalize), in NumPy."""
    x, y = _normalize(pre).T, _normalize(down).T  # [D, N]
    n = x.shape[1]
    x = x - x.mean(axis=1)[:, None]
    y = y - y.mean(axis=1)[:, None]
    u, _, vt = np.linalg.svd(x @ y.T)
    v = vt.T.copy()
    v[:, -1] = v[:, -1] * np.linalg.det(v @ u.T)
    r = v @ u.T
    t = (y - r @ x).mean(axis=1)[:, None]
    return (r @ x + np.repeat(t, n, axis=1)).T


def test_a_planted_rotation_is_recovered_exactly():
    rng = np.random.default_rng(0)
    pre = _normalize(rng.standard_normal((40, 5)))
    planted = _rotation(rng, 5)
    out = kabsch_rotation(pre, pre @ planted.T)  # rows x_i ↦ R x_i keep unit norm
    centred = pre - pre.mean(axis=0)
    np.testing.assert_allclose(out, centred @ planted.T, atol=1e-13)
    # R itself: N > D, so X_c has full rank and R = lstsq(X_c, out)ᵀ is unique
    recovered = np.linalg.lstsq(centred, out, rcond=None)[0].T
    np.testing.assert_allclose(recovered, planted, atol=1e-12)


@pytest.mark.parametrize("shape", [(50, 6), (8, 8), (5, 12)])
def test_matches_the_official_rot_align(shape):
    rng = np.random.default_rng(shape[0])
    pre = rng.standard_normal(shape) + 1.0
    down = pre @ _rotation(rng, shape[1]).T + 0.3 * rng.standard_normal(shape)
    np.testing.assert_allclose(kabsch_rotation(pre, down), _official_rot_align(pre, down), atol=1e-12)


@pytest.mark.parametrize("shape", [(30, 4), (6, 10)])
def test_official_mode_output_is_centred_and_restore_adds_the_target_mean(shape):
    rng = np.random.default_rng(1)
    pre = rng.standard_normal(shape) + 3.0
    down = rng.standard_normal(shape) - 2.0
    out = kabsch_rotation(pre, down)
    np.testing.assert_allclose(out.mean(axis=0), 0.0, atol=1e-15)
    restored = kabsch_rotation(pre, down, restore_target_mean=True)
    np.testing.assert_allclose(
        restored - out, np.broadcast_to(_normalize(down).mean(axis=0), shape), atol=1e-15
    )


@pytest.mark.parametrize("shape", [(5, 12), (12, 12), (40, 6)])
def test_rotated_features_do_not_depend_on_the_frame_of_the_pretrained_queue(shape):
    # pre ↦ pre Qᵀ changes S = Q S and its (arbitrary, when rank-deficient) null-space vectors,
    # but R' = R Qᵀ, so R' X'_c = R X_c: the output is unique even where R is not
    rng = np.random.default_rng(2)
    pre = rng.standard_normal(shape)
    down = rng.standard_normal(shape)
    frame = _rotation(rng, shape[1])
    np.testing.assert_allclose(kabsch_rotation(pre @ frame.T, down), kabsch_rotation(pre, down), atol=1e-12)
    # rotating the target rotates the output
    np.testing.assert_allclose(
        kabsch_rotation(pre, down @ frame.T), kabsch_rotation(pre, down) @ frame.T, atol=1e-12
    )


def test_a_reflection_target_still_gives_a_proper_rotation():
    rng = np.random.default_rng(3)
    pre = rng.standard_normal((30, 3))
    mirrored = pre * np.array([1.0, 1.0, -1.0])
    out = kabsch_rotation(pre, mirrored)
    centred = _normalize(pre) - _normalize(pre).mean(axis=0)
    rotation = np.linalg.lstsq(centred, out, rcond=None)[0].T
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(rotation) == pytest.approx(1.0, abs=1e-12)
    # the unconstrained optimum (the mirror itself) is not reached
    assert np.abs(out - (centred * np.array([1.0, 1.0, -1.0]))).max() > 1e-2


def test_rows_are_normalized_first():
    rng = np.random.default_rng(4)
    pre, down = rng.standard_normal((10, 3)), rng.standard_normal((10, 3))
    scales = rng.uniform(0.1, 10.0, size=(10, 1))
    np.testing.assert_allclose(
        kabsch_rotation(pre * scales, down / scales), kabsch_rotation(pre, down), atol=1e-13
    )


def test_hand_example_quarter_turn_and_float32():
    x = np.array([[2.0, 0.0], [-3.0, 0.0]])
    y = np.array([[0.0, 5.0], [0.0, -1.0]])
    np.testing.assert_allclose(kabsch_rotation(x, y), [[0.0, 1.0], [0.0, -1.0]], atol=1e-15)
    out32 = kabsch_rotation(x.astype(np.float32), y.astype(np.float32))
    assert out32.dtype == np.float32
    np.testing.assert_allclose(out32, [[0.0, 1.0], [0.0, -1.0]], atol=1e-6)
