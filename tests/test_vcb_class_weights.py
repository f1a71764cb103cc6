"""VCB class weights (HACO): hand values, the epoch schedule of the blend, the floor, the
fallbacks of the official code, and agreement with a transcription of that code."""

import numpy as np
import pytest

import refimpl
from refimpl.losses import vcb_class_weights
from refimpl.reweighting import class_balanced_weights

SMALL = {"beta": 0.5, "vertex_weight_max": 1.0}


def _binary_labels(seed: int, samples: int, vertices: int) -> np.ndarray:
    """0/1 contact labels (samples, vertices), contact rare at most vertices."""
    rng = np.random.default_rng(seed)
    rate = 10 ** rng.uniform(-3, -0.1, size=vertices)
    return (rng.random((samples, vertices)) < rate).astype(np.int64)


def _counts(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    contacts = labels.sum(axis=0).astype(np.float64)
    vertex_counts = np.stack([labels.shape[0] - contacts, contacts], axis=1)
    return vertex_counts, vertex_counts.sum(axis=0)


LABELS = _binary_labels(0, 3000, 40)
VERTEX_COUNTS, GLOBAL_COUNTS = _counts(LABELS)


def test_own_counts_at_full_vertex_weight_match_hand_values():
    # ω = 1: ñ = [3, 1]; β = 1/2: u = [(1/2)/(7/8), (1/2)/(1/2)] = [4/7, 1], w = [4/11, 7/11]
    w = vcb_class_weights(
        np.array([[3.0, 1.0]]),
        np.array([1.0, 1.0]),
        epoch=1,
        total_epochs=2,
        total_samples=4.0,
        min_samples=1.0,
        **SMALL,
    )
    np.testing.assert_allclose(w, [[4 / 11, 7 / 11]], rtol=1e-15)


def test_floor_then_renormalization_match_hand_values():
    # ñ = [6, 0] → floor 3: [6, 3] → ×6/9: [4, 2]; u = [8/15, 2/3], w = [4/9, 5/9]
    w = vcb_class_weights(
        np.array([[6.0, 0.0]]),
        np.array([1.0, 1.0]),
        epoch=3,
        total_epochs=4,
        total_samples=6.0,
        min_samples=3.0,
        **SMALL,
    )
    np.testing.assert_allclose(w, [[4 / 9, 5 / 9]], rtol=1e-15)


def test_blend_weight_grows_linearly_to_vertex_weight_max():
    # vertex share [0, 20], global share [20, 0]: ñ_e = [20(1 − ω_e), 20 ω_e], ω_e = 0.3·e/(E − 1)
    total_epochs, beta = 5, 0.9
    for epoch in range(total_epochs):
        omega = 0.3 * epoch / (total_epochs - 1)
        n_tilde = np.array([20 * (1 - omega), 20 * omega])
        n_tilde = np.maximum(n_tilde, 1.0)
        n_tilde = n_tilde / n_tilde.sum() * 20
        u = (1 - beta) / (1 - beta**n_tilde)
        w = vcb_class_weights(
            np.array([[0.0, 10.0]]),
            np.array([1.0, 0.0]),
            epoch=epoch,
            total_epochs=total_epochs,
            beta=beta,
            total_samples=20.0,
            min_samples=1.0,
        )
        np.testing.assert_allclose(w, [u / u.sum()], rtol=1e-14, err_msg=f"epoch {epoch}")


def test_epoch_zero_gives_every_vertex_the_global_weights():
    w = vcb_class_weights(VERTEX_COUNTS, GLOBAL_COUNTS, epoch=0, total_epochs=10)
    share = GLOBAL_COUNTS / GLOBAL_COUNTS.sum() * 1000
    assert share.min() >= 20  # the floor is inactive: the global weights are plain CB weights
    expected = class_balanced_weights(share, beta=0.9999, normalization="sum_to_one")
    np.testing.assert_allclose(w, np.broadcast_to(expected, w.shape), rtol=1e-13)


def test_epochs_past_the_last_use_the_last_table():
    last = vcb_class_weights(VERTEX_COUNTS, GLOBAL_COUNTS, epoch=9, total_epochs=10)
    for epoch in (10, 11, 1000):
        np.testing.assert_array_equal(
            vcb_class_weights(VERTEX_COUNTS, GLOBAL_COUNTS, epoch=epoch, total_epochs=10), last
        )
    assert not np.allclose(last, vcb_class_weights(VERTEX_COUNTS, GLOBAL_COUNTS, epoch=8, total_epochs=10))


def test_rows_sum_to_one_and_the_rarer_blended_class_weighs_more():
    for epoch in (0, 4, 9):
        w = vcb_class_weights(VERTEX_COUNTS, GLOBAL_COUNTS, epoch=epoch, total_epochs=10)
        np.testing.assert_allclose(w.sum(axis=1), 1.0, rtol=1e-14)
    # at the last epoch, ω = 0.3: contact (rare everywhere here) gets the larger weight
    assert np.all(w[:, 1] > w[:, 0])
    # and a vertex that is in contact more often gets a smaller contact weight
    contact_share = VERTEX_COUNTS[:, 1] / VERTEX_COUNTS.sum(axis=1)
    order = np.argsort(contact_share, kind="stable")
    assert np.all(np.diff(w[order, 1]) <= 1e-15)


def test_counts_scale_does_not_matter():
    w = vcb_class_weights(VERTEX_COUNTS, GLOBAL_COUNTS, epoch=5, total_epochs=10)
    scaled = vcb_class_weights(VERTEX_COUNTS * 7e8, GLOBAL_COUNTS * 3.5, epoch=5, total_epochs=10)
    np.testing.assert_allclose(scaled, w, rtol=1e-12)


def test_floor_keeps_a_never_seen_class_finite():
    # every vertex always in contact and no contact never seen: ñ_0 = 0 before the floor
    vertex_counts = np.array([[0.0, 500.0], [0.0, 7.0]])
    with np.errstate(all="raise"):
        w = vcb_class_weights(vertex_counts, np.array([0.0, 507.0]), epoch=1, total_epochs=2)
    # ñ = [0, 1000] → [20, 1000] → ×1000/1020
    n_tilde = np.array([20.0, 1000.0]) * 1000 / 1020
    u = (1 - 0.9999) / (1 - 0.9999**n_tilde)
    np.testing.assert_allclose(w, np.broadcast_to(u / u.sum(), (2, 2)), rtol=1e-12)
    assert w[0, 0] < 0.99  # without the floor the weight of class 0 would be u = inf, w = nan


def test_a_vertex_without_counts_falls_back_to_the_global_weights():
    global_counts = np.array([900.0, 100.0])
    with np.errstate(all="raise"):
        w = vcb_class_weights(np.array([[0.0, 0.0], [1.0, 9.0]]), global_counts, epoch=3, total_epochs=4)
    at_epoch_zero = vcb_class_weights(np.array([[0.0, 0.0]]), global_counts, epoch=0, total_epochs=4)
    np.testing.assert_allclose(w[0], at_epoch_zero[0], rtol=1e-14)
    assert not np.allclose(w[1], w[0])


def test_beta_zero_gives_equal_weights():
    w = vcb_class_weights(VERTEX_COUNTS, GLOBAL_COUNTS, epoch=7, total_epochs=10, beta=0.0)
    np.testing.assert_array_equal(w, 0.5)


def test_beta_close_to_one_tends_to_inverse_blended_counts():
    # β → 1: u = (1 − β)/(1 − β^ñ) → 1/ñ, so w_{v,c} → ñ_{v,1−c}/T
    vertex_counts = np.array([[700.0, 300.0]])
    w = vcb_class_weights(
        vertex_counts, np.array([1.0, 1.0]), epoch=1, total_epochs=2, beta=1 - 1e-12, vertex_weight_max=1.0
    )
    np.testing.assert_allclose(w, [[0.3, 0.7]], rtol=1e-9)


def test_float32_keeps_its_dtype_and_matches_float64():
    w64 = vcb_class_weights(VERTEX_COUNTS, GLOBAL_COUNTS, epoch=4, total_epochs=10)
    w32 = vcb_class_weights(
        VERTEX_COUNTS.astype(np.float32), GLOBAL_COUNTS.astype(np.float32), epoch=4, total_epochs=10
    )
    assert w32.dtype == np.float32
    np.testing.assert_allclose(w32, w64, rtol=2e-5)


def _official_tables(labels: np.ndarray, total_epoch: int, beta: float = 0.9999) -> dict:
    """HACO_RELEASE lib/core/loss.py, VCBLoss.get_samples_per_cls (v_type="mesh") and
    compute_class_weight, transcribed in float64."""
    torch = pytest.importorskip("torch")
    all_contact_samples = torch.from_numpy(labels).to(torch.int32)
    total_sample_num = 1000
    count_v_0 = (all_contact_samples == 0).sum(dim=0)
    count_v_1 = (all_contact_samples == 1).sum(dim=0)
    all_v_contact_counts = torch.stack([count_v_0, count_v_1], dim=1).double()
    count_0 = (all_contact_samples == 0).sum()
    count_1 = (all_contact_samples == 1).sum()
    all_contact_counts = torch.tensor([count_0, count_1]).double()
    denom_v = all_v_contact_counts.sum(dim=1, keepdim=True).clamp(min=1e-6)
    samples_per_cls_v = all_v_contact_counts / denom_v * total_sample_num
    denom = all_contact_counts.sum().clamp(min=1e-6)
    samples_per_cls = all_contact_counts / denom * total_sample_num
    tables = {}
    v_weight_max = 0.3
    for epoch in range(total_epoch):
        v_weight = v_weight_max * (epoch / (total_epoch - 1))
        all_weight = 1.0 - v_weight
        table = v_weight * samples_per_cls_v.clone() + all_weight * samples_per_cls.clone()
        table = table.clamp(min=20.0)
        table = table / table.sum(dim=1, keepdim=True) * total_sample_num
        effective_num = 1.0 - torch.pow(beta, table)
        class_weights = (1.0 - beta) / effective_num
        tables[epoch] = (class_weights / class_weights.sum(dim=1, keepdim=True)).numpy()
    return tables


def test_matches_the_official_code_at_every_epoch():
    labels = _binary_labels(1, 5000, 778)
    labels[:, 5] = 0  # a vertex never in contact: the floor is active
    labels[:, 6] = 1  # a vertex always in contact
    vertex_counts, global_counts = _counts(labels)
    tables = _official_tables(labels, total_epoch=10)
    for epoch in (0, 1, 5, 9, 12):
        official = tables[epoch if epoch in tables else max(tables)]
        ours = vcb_class_weights(vertex_counts, global_counts, epoch=epoch, total_epochs=10)
        np.testing.assert_allclose(ours, official, rtol=1e-10, err_msg=f"epoch {epoch}")


def test_has_no_default_number_of_epochs():
    with pytest.raises(refimpl.InputError, match="total_epochs"):
        vcb_class_weights(VERTEX_COUNTS, GLOBAL_COUNTS, epoch=0)


@pytest.mark.parametrize(
    ("vertex_counts", "global_counts", "kwargs", "argument"),
    [
        (np.array([[1.0, -1.0]]), np.array([1.0, 1.0]), {}, "vertex_counts"),
        (np.array([[1.0, 1.0]]), np.array([-1.0, 3.0]), {}, "global_counts"),
        (np.array([[1.0, 1.0]]), np.zeros(2), {}, "global_counts"),
        (np.array([[1.0, 1.0, 1.0]]), np.array([1.0, 1.0]), {}, "vertex_counts"),
        (np.array([[1.0, 1.0]]), np.array([1.0, 1.0]), {"total_epochs": 1}, "total_epochs"),
        (np.array([[1.0, 1.0]]), np.array([1.0, 1.0]), {"epoch": -1}, "epoch"),
        (np.array([[1.0, 1.0]]), np.array([1.0, 1.0]), {"beta": 1.0}, "beta"),
        (np.array([[1.0, 1.0]]), np.array([1.0, 1.0]), {"min_samples": 0.0}, "min_samples"),
        (np.array([[1.0, 1.0]]), np.array([1.0, 1.0]), {"vertex_weight_max": 1.5}, "vertex_weight_max"),
        (np.array([[1.0, 1.0]]), np.array([1.0, 1.0]), {"total_samples": 0.0}, "total_samples"),
    ],
)
def test_bad_input_raises_input_error_naming_the_argument(vertex_counts, global_counts, kwargs, argument):
    call = {"epoch": 0, "total_epochs": 2, **kwargs}
    with pytest.raises(refimpl.InputError, match=rf"^vcb_class_weights: argument '{argument}'"):
        vcb_class_weights(vertex_counts, global_counts, **call)
