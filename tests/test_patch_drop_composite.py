"""patch_drop_composite: MAE random masking with explicit noise, reconstruction in the dropped patches."""

from __future__ import annotations

import numpy as np
import pytest

import refimpl
from refimpl import InputError


def _mae_random_masking(noise, mask_ratio):
    """MAE's random_masking (models_mae.py), transcribed: argsort, keep the first len_keep, unshuffle."""
    batch, length = noise.shape
    len_keep = int(length * (1 - mask_ratio))
    ids_shuffle = np.argsort(noise, axis=1, kind="stable")
    ids_restore = np.argsort(ids_shuffle, axis=1, kind="stable")
    mask = np.ones((batch, length))
    mask[:, :len_keep] = 0
    return np.take_along_axis(mask, ids_restore, axis=1).astype(bool)


@pytest.mark.parametrize("ratio", [0.0, 0.2, 0.5, 0.75])
def test_mask_matches_transcribed_mae_random_masking(ratio):
    rng = np.random.default_rng(1)
    x, r = rng.standard_normal((3, 2, 8, 12)), rng.standard_normal((3, 2, 8, 12))
    noise = rng.random((3, 6))
    composite, mask = refimpl.data_selection.patch_drop_composite(x, r, noise, mask_ratio=ratio, patch_size=4)
    np.testing.assert_array_equal(mask, _mae_random_masking(noise, ratio))
    assert mask.sum(axis=1).tolist() == [6 - int(6 * (1 - ratio))] * 3
    for b in range(3):
        for patch in range(6):
            i, j = divmod(patch, 3)
            window = (b, slice(None), slice(4 * i, 4 * i + 4), slice(4 * j, 4 * j + 4))
            expected = r[window] if mask[b, patch] else x[window]
            np.testing.assert_array_equal(composite[window], expected)


def test_default_ratio_drops_twenty_percent_of_sixteen_pixel_patches():
    rng = np.random.default_rng(2)
    x, r = np.zeros((1, 3, 32, 80)), np.ones((1, 3, 32, 80))  # L = 2·5 = 10 patches
    composite, mask = refimpl.data_selection.patch_drop_composite(x, r, rng.random((1, 10)))
    assert mask.sum() == 2
    assert composite.mean() == pytest.approx(0.2)


def test_bad_patch_size_is_refused():
    x = np.zeros((1, 1, 4, 4))
    with pytest.raises(InputError, match="divisor"):
        refimpl.data_selection.patch_drop_composite(x, x, np.zeros((1, 4)), patch_size=3)
