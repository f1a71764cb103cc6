"""Conformance cases for `kabsch_rotation`, `drtune_semantic_calibration` and
`drtune_distribution_regularization`."""

from __future__ import annotations

import math

import numpy as np

from refimpl.regularizers import kabsch_rotation

from ..._cases import Bench, ErrorCase, Known, OpCases, Sample, register
from ...deviations import transcribes


def _rotation(rng, d):
    """A random proper rotation (D × D), from the QR of a Gaussian matrix."""
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


# -- kabsch_rotation ----------------------------------------------------------------------
KABSCH_NOTES = {
    "PLANTED": "F_down = F_pre Rᵀ with a proper rotation R: the output is F_down's normalized rows, centred",
    "RANK_DEFICIENT": "N ≤ D: S is singular and R is arbitrary on the null space; R X_c is still unique",
    "REFLECTION": "the best orthogonal map is a reflection: det(V Uᵀ) = −1 flips V's last column",
    "RESTORE": "restore_target_mean=True adds mean_n normalize(F_down) back (Kabsch's translation)",
    "ZERO_ROW": "a zero feature row normalizes to 0 (F.normalize's eps), not NaN",
}


def _kabsch_random(rng, N, D):
    pre = rng.standard_normal((N, D)) * float(rng.choice([0.5, 1.0, 20.0])) + float(rng.choice([0.0, 1.0]))
    noise = float(rng.choice([0.0, 0.1, 1.0]))
    down = pre @ _rotation(rng, D).T + noise * rng.standard_normal((N, D))
    return Sample("random", (pre, down), {"restore_target_mean": bool(rng.random() < 0.3)})


def _kabsch_edges():
    rng = np.random.default_rng(21)
    pre = rng.standard_normal((12, 4))
    rotation = _rotation(rng, 4)
    wide = rng.standard_normal((5, 8))
    mirrored = pre * np.array([1.0, 1.0, 1.0, -1.0]) + 0.05 * rng.standard_normal((12, 4))
    with_zero = pre.copy()
    with_zero[3] = 0.0
    return [
        Sample("planted rotation", (pre, pre @ rotation.T), flags=("PLANTED",)),
        Sample(
            "N = 5 < D = 8",
            (wide, wide @ _rotation(rng, 8).T + 0.1 * rng.standard_normal((5, 8))),
            flags=("RANK_DEFICIENT",),
        ),
        Sample("N = 2: rank one", (wide[:2], wide[2:4]), flags=("RANK_DEFICIENT",)),
        Sample("a reflection is nearest", (pre, mirrored), flags=("REFLECTION",)),
        Sample(
            "restore the target mean",
            (pre, pre @ rotation.T + 3.0),
            {"restore_target_mean": True},
            flags=("RESTORE",),
        ),
        Sample("a zero row", (with_zero, pre @ rotation.T), flags=("ZERO_ROW",)),
    ]


def _kabsch_errors():
    return [ErrorCase("N = 1", (np.ones((1, 3)), np.ones((1, 3))), match=r"'pre_queue'.*N >= 2")]


def _kabsch_known():
    # rows ±e1 rotated onto ±e2: R = 90° rotation, output [[0, 1], [0, −1]] (centred already)
    x = np.array([[2.0, 0.0], [-3.0, 0.0]])
    y = np.array([[0.0, 5.0], [0.0, -1.0]])
    return [
        Known(
            "±e1 onto ±e2",
            (x, y),
            values={"rotated": [[0.0, 1.0], [0.0, -1.0]]},
            source="by hand: normalized rows ±e1 and ±e2 are centred; R rotates e1 to e2",
            atol=1e-12,
        ),
        Known(
            "±e1 onto ±e2 + target mean",
            (x, np.array([[1.0, 1.0], [1.0, -1.0]])),
            {"restore_target_mean": True},
            # normalized Y = [1, ±1]/√2: mean [1/√2, 0], centred rows ±e2/√2; R X_c = ±e2 (R e1 = e2)
            values={"rotated": [[1 / math.sqrt(2), 1.0], [1 / math.sqrt(2), -1.0]]},
            source="by hand: R X_c = ±e2 plus the normalized target mean [1/√2, 0]",
            atol=1e-12,
        ),
    ]


register(
    OpCases(
        "kabsch_rotation",
        dims={"N": (2, 9), "D": (1, 5)},
        random=_kabsch_random,
        edges=_kabsch_edges,
        errors=_kabsch_errors,
        known=_kabsch_known,
        defaults={"restore_target_mean": False},
        notes=KABSCH_NOTES,
    )
)


# -- drtune_semantic_calibration ----------------------------------------------------------
CALIBRATION_NOTES = {
    "EMPTY_CLASS": "a class with no queue row is skipped (no NaN from an empty mean)",
    "ONE_MEMBER": "a one-member class moves its row onto its downstream row (official 0-d squeeze differs)",
    "NO_ROTATION": "rotate=False: the normalized queue is translated without the Kabsch step",
    "ZERO_PROTOTYPE": "a zero head row: normalize gives 0, the softmax weights are uniform",
}


def _calibration_random(rng, N, D, K, B):
    pre = rng.standard_normal((N, D)) + float(rng.choice([0.0, 2.0]))
    down = pre @ _rotation(rng, D).T + float(rng.choice([0.1, 1.0])) * rng.standard_normal((N, D))
    labels = rng.integers(0, K, size=N)
    head = rng.standard_normal((K, D)) * float(rng.choice([0.01, 1.0]))
    batch = rng.standard_normal((B, D)) * float(rng.choice([1.0, 10.0]))
    kwargs = {"rotate": bool(rng.random() < 0.5), "restore_target_mean": bool(rng.random() < 0.2)}
    return Sample("random", (pre, down, labels, head, batch), kwargs)


def _calibration_edges():
    rng = np.random.default_rng(5)
    pre = rng.standard_normal((10, 4))
    down = pre @ _rotation(rng, 4).T + 0.3 * rng.standard_normal((10, 4))
    head = rng.standard_normal((4, 4))
    batch = rng.standard_normal((3, 4)) * 5.0
    labels = np.array([0, 0, 1, 1, 1, 0, 1, 0, 1, 1])  # classes 2 and 3 empty
    one_member = np.array([0, 0, 1, 1, 1, 2, 1, 0, 1, 1])  # class 2 has one row
    zero_head = head.copy()
    zero_head[1] = 0.0
    return [
        Sample(
            "empty classes, rotated",
            (pre, down, labels, head, batch),
            {"rotate": True},
            flags=("EMPTY_CLASS",),
        ),
        Sample(
            "a one-member class",
            (pre, down, one_member, head, batch),
            {"rotate": True},
            flags=("ONE_MEMBER",),
        ),
        Sample(
            "no rotation", (pre, down, one_member, head, batch), {"rotate": False}, flags=("NO_ROTATION",)
        ),
        Sample(
            "zero head row",
            (pre, down, labels, zero_head, batch),
            {"rotate": False},
            flags=("ZERO_PROTOTYPE",),
        ),
    ]


def _calibration_errors():
    ones = np.ones((1, 3))
    return [
        ErrorCase(
            "rotate with N = 1",
            (ones, ones, np.array([0]), np.eye(2, 3), ones),
            {"rotate": True},
            match=r"'pre_queue'.*N >= 2",
        )
    ]


def _calibration_known():
    pre = np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 0.0]])
    down = np.array([[0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    labels = np.array([0, 1, 0])
    head = np.array([[0.0, 1.0], [1.0, 0.0]])
    batch = np.array([[3.0, 4.0], [6.0, 8.0]])  # mean norm 7.5
    return [
        Known(
            "two classes, no rotation",
            (pre, down, labels, head, batch),
            {"rotate": False},
            # class 0: rows p = e1, e1; q = e2, e2 (equal cosines: equal weights); shift e2 − e1
            # → rows e2; class 1: one row, moved onto q = e1; scaled by 7.5
            values={"calibrated": [[0.0, 7.5], [7.5, 0.0], [0.0, 7.5]]},
            source="by hand",
            atol=1e-12,
        )
    ]


register(
    OpCases(
        "drtune_semantic_calibration",
        dims={"N": (2, 10), "D": (2, 5), "K": (1, 4), "B": (1, 4)},
        random=_calibration_random,
        edges=_calibration_edges,
        errors=_calibration_errors,
        known=_calibration_known,
        defaults={"restore_target_mean": False},
        notes=CALIBRATION_NOTES,
    )
)


# -- drtune_distribution_regularization ---------------------------------------------------
REGULARIZATION_NOTES = {
    "LARGE_LOGITS": "logits ~1e3: the log-softmax must subtract the row max",
    "ONE_CLASS": "K = 1: every ℓ = 0 and every gradient is 0",
    "QUEUE_DOMINATES": "N ≫ B: the batch rows carry weight B/(B + N) only",
}


def _regularization_random(rng, B, N, D, K):
    scale = float(rng.choice([0.1, 1.0, 5.0]))
    features = rng.standard_normal((B, D)) * scale
    queue = rng.standard_normal((N, D)) * scale
    head = rng.standard_normal((K, D)) * float(rng.choice([0.01, 1.0]))
    bias = rng.standard_normal(K) * float(rng.choice([0.0, 1.0]))
    return Sample(
        "random",
        (features, rng.integers(0, K, size=B), queue, rng.integers(0, K, size=N), head, bias),
    )


def _regularization_edges():
    rng = np.random.default_rng(3)
    features, queue = rng.standard_normal((4, 5)), rng.standard_normal((6, 5))
    labels, queue_labels = np.array([0, 2, 1, 2]), np.array([1, 1, 0, 2, 0, 1])
    head, bias = rng.standard_normal((3, 5)), rng.standard_normal(3)
    return [
        Sample(
            "logits ~1e3",
            (features * 300.0, labels, queue * 300.0, queue_labels, head, bias),
            flags=("LARGE_LOGITS",),
            dtypes=("float64",),
            comment="float32 logits of 1e3 keep 4 digits: the float32 run is the random samples'",
        ),
        Sample(
            "one class",
            (features, 0 * labels, queue, 0 * queue_labels, head[:1], bias[:1]),
            flags=("ONE_CLASS",),
        ),
        Sample(
            "one batch row, 40 queue rows",
            (features[:1], labels[:1], rng.standard_normal((40, 5)), rng.integers(0, 3, size=40), head, bias),
            flags=("QUEUE_DOMINATES",),
        ),
    ]


def _regularization_errors():
    features, queue, head, bias = np.ones((2, 3)), np.ones((4, 3)), np.ones((3, 3)), np.zeros(3)
    return [
        ErrorCase(
            "queue label = K",
            (features, np.array([0, 1]), queue, np.array([0, 1, 2, 3]), head, bias),
            match=r"'queue_labels'",
        ),
        ErrorCase(
            "queue width differs",
            (features, np.array([0, 1]), np.ones((4, 2)), np.array([0, 1, 2, 0]), head, bias),
            match=r"'calibrated'",
        ),
    ]


def _regularization_known():
    # every row's logits are [0, log 3] (p = [1/4, 3/4]); M = 2
    args = (
        np.array([[0.0, 0.0]]),
        np.array([0]),
        np.array([[0.0, 1.0]]),
        np.array([1]),
        np.array([[1.0, 0.0], [0.0, 0.0]]),
        np.array([0.0, math.log(3.0)]),
    )
    return [
        Known(
            "logits [0, log 3] on both rows",
            args,
            values={
                "loss": 0.5 * math.log(16.0 / 3.0),  # (log 4 + log 4/3)/2
                # G = [[−3/8, 3/8], [1/8, −1/8]]
                "cotangent of 'features'": [[-3 / 8, 0.0]],  # G_1 W
                "cotangent of 'head_weight'": [[0.0, 1 / 8], [0.0, -1 / 8]],  # Gᵀ F
                "cotangent of 'head_bias'": [-0.25, 0.25],  # Σ_i G_i
            },
            source="by hand",
            rtol=1e-12,
            atol=1e-15,
        )
    ]


def _regularization_torch(torch, args, kwargs, cotangent):
    """F.linear on cat(f, F_cal), F.cross_entropy (mean); autograd backward."""
    F = torch.nn.functional
    features = torch.from_numpy(args[0]).requires_grad_()
    labels = torch.from_numpy(args[1]).long()
    queue = torch.from_numpy(args[2])
    queue_labels = torch.from_numpy(args[3]).long()
    head = torch.from_numpy(args[4]).requires_grad_()
    bias = torch.from_numpy(args[5]).requires_grad_()
    all_labels = torch.cat((labels, queue_labels))
    g = torch.from_numpy(np.asarray(cotangent))

    def step():
        features.grad = head.grad = bias.grad = None
        logits = F.linear(torch.cat((features, queue), dim=0), head, bias)
        loss = F.cross_entropy(logits, all_labels)
        loss.backward(g)
        return loss

    return step


def _regularization_blas(args, kwargs):
    features, queue, head = args[0], args[2], args[4]
    stacked = np.concatenate([features, queue])
    g_logits = np.ones((stacked.shape[0], head.shape[0]), dtype=features.dtype)
    batch = features.shape[0]

    def step():
        logits = stacked @ head.T  # forward: Z = F Wᵀ
        g_head = (stacked.T @ g_logits).T  # ∂W = Gᵀ F, as (Fᵀ G)ᵀ (BLAS's faster order)
        g_features = g_logits[:batch] @ head  # ∂f = G_{1..B} W
        return logits, g_head, g_features

    return step


register(
    OpCases(
        "drtune_distribution_regularization",
        dims={"B": (1, 5), "N": (1, 6), "D": (1, 6), "K": (1, 6)},
        random=_regularization_random,
        edges=_regularization_edges,
        errors=_regularization_errors,
        known=_regularization_known,
        defaults={},
        notes=REGULARIZATION_NOTES,
        bench=Bench(
            # official: batch 64 and queue K = 2048 (configs/cifar10_k2048_lr001.yaml), ResNet-50
            # width D = 2048; queue rows and width from --shape, 100 classes (CIFAR-100)
            sizes={"B": 64, "N": "rows", "D": "cols", "K": 100},
            torch=_regularization_torch,
            torch_label="F.linear(cat(f, F_cal), W, b), F.cross_entropy (mean); autograd backward",
            # one exp per logit ((B + N)·K, the backward reuses p) and one log per row
            transcendentals=lambda args, kwargs: (
                (args[0].shape[0] + args[2].shape[0]) * (args[4].shape[0] + 1)
            ),
            blas=_regularization_blas,
        ),
    )
)


# -- the official code's deviation (``refimpl deviations``) ------------------------------------------
def _normalize(x, axis=-1):
    return x / np.maximum(np.linalg.norm(x, axis=axis, keepdims=True), 1e-12)


def official_calibration(pre, down, labels, head, batch, rotate, squeeze_quirk=True):
    """weeknan/DR-Tune model.py semantic_calibration, in NumPy (rot_align via kabsch_rotation,
    checked against its own transcription in test_kabsch_rotation.py)."""
    l2_norm = np.linalg.norm(batch, axis=1).mean()
    cali = _normalize(pre)
    normed_down = _normalize(down)
    if rotate:
        cali = kabsch_rotation(cali, normed_down)
    for c in range(head.shape[0]):
        class_idx = np.flatnonzero(labels == c)
        if squeeze_quirk and class_idx.size == 1:
            class_idx = class_idx[0]  # torch.nonzero(...).squeeze() of one hit: a 0-d index
        c_pre = cali[class_idx]
        c_down = normed_down[class_idx]
        if np.size(class_idx) == 0:
            continue  # the official update writes nothing for an empty class
        pre_center = c_pre.mean(axis=0)
        distance = c_down @ _normalize(head[c])[:, None]
        weight = np.exp(distance - distance.max(axis=0)) / np.exp(distance - distance.max(axis=0)).sum(axis=0)
        down_center = (c_down * weight).sum(axis=0) if c_down.ndim == 2 else (c_down * weight).sum()
        cali = cali.copy()
        cali[class_idx] = c_pre + (down_center - pre_center)
    return _normalize(cali) * l2_norm


@transcribes("drtune-single-member-class-squeeze", outputs=("calibrated",))
def _official_semantic_calibration(
    pre_queue, down_queue, queue_labels, head_weight, batch_features, *, rotate, restore_target_mean, dtype
):
    """The official loop with its ``nonzero(...).squeeze()`` (the default mean restore only)."""
    args = (pre_queue, down_queue, queue_labels, head_weight, batch_features)
    return {"calibrated": official_calibration(*(np.asarray(a) for a in args), rotate)}
