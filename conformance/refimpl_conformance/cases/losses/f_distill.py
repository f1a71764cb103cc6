"""Conformance cases for `f_divergence_weight` and `vsd_loss`."""

from __future__ import annotations

import numpy as np

import refimpl

from ..._cases import Bench, ErrorCase, OpCases, Sample, register
from ...deviations import transcribes

NOTES = {
    "LARGE_LOGITS": "logits ±1e4: exp must see the clipped logit (exp(1e4) overflows)",
    "NEYMAN_SMALL_RATIO": "neyman with r → 0: 1/r is clamped at r = 1e-8",
    "ONE_BIN": "every sample in one time bin",
    "AT_TEACHER": "x = x0_teacher: the distance is 0 and w = h/1e-6 (large, finite)",
    "IMAGES": "4-D samples (B, C, H, W): the distance is a mean over C·H·W",
    "CUSTOM_VJP": "the backward is the stop-gradient surrogate's, not the derivative of the forward value",
}

DIVERGENCES = ["rkl", "kl", "js", "sf", "neyman", "sh", "jf"]


def _weight_random(rng, B):  # noqa: N803
    logit = rng.standard_normal(B) * float(rng.choice([0.5, 3.0, 20.0]))
    kwargs = {
        "divergence": str(rng.choice(DIVERGENCES)),
        "ratio_normalization": bool(rng.integers(0, 2)),
        "normalize": bool(rng.integers(0, 2)),
    }
    time_bin = rng.integers(0, 10, B)
    # the clips over their range (drawn after the arrays: the earlier draws stay as they were)
    kwargs["logit_clip"] = float(rng.choice([10.0, 3.0, 40.0]))
    kwargs["ratio_lower"] = float(rng.choice([0.1, 0.01]))
    kwargs["ratio_upper"] = float(rng.choice([20.0, 2.0]))
    return Sample("random", (logit, time_bin), kwargs)


def _weight_edges():
    return [
        Sample(
            "known value: js, r = 1 and 3, no normalization",
            (np.log(np.array([1.0, 3.0])), np.array([0, 1])),
            {"ratio_normalization": False, "normalize": False},
            comment="h = r/(1 + r) = [0.5, 0.75]",
        ),
        Sample(
            "logits ±1e4",
            (np.array([1e4, -1e4, 0.0]), np.array([0, 0, 1])),
            {"divergence": "kl"},
            flags=("LARGE_LOGITS",),
        ),
        Sample(
            "neyman with tiny ratios",
            (np.array([-30.0, -25.0, 1.0]), np.array([2, 2, 2])),
            {"divergence": "neyman", "logit_clip": 40.0, "ratio_lower": 1e-20, "normalize": False},
            flags=("NEYMAN_SMALL_RATIO", "ONE_BIN"),
            dtypes=("float64",),
            comment="r = e^-30 < 1e-8 is clamped; the per-bin mean keeps the ratios tiny",
        ),
        Sample(
            "no time bins (None) without the per-bin normalization",
            (np.array([0.3, -2.0, 5.0]), None),
            {"divergence": "js", "ratio_normalization": False},
        ),
        Sample("rkl is all ones", (np.array([0.3, -2.0, 5.0]), np.array([0, 3, 9])), {"divergence": "rkl"}),
        Sample(
            "one sample per bin: r normalized to ≈ 1",
            (np.array([0.5, -1.0, 2.0]), np.array([0, 1, 2])),
            {"divergence": "sh"},
        ),
    ]


def _weight_errors():
    logit, bins = np.zeros(3), np.zeros(3, int)
    return [
        ErrorCase("lower clip above upper", (logit, bins), {"ratio_lower": 30.0}, match="ratio_upper"),
        ErrorCase("no time bins with the per-bin normalization", (logit, None), match=r"'time_bin'.*None"),
    ]


register(
    OpCases(
        "f_divergence_weight",
        dims={"B": (1, 8)},
        random=_weight_random,
        edges=_weight_edges,
        errors=_weight_errors,
        notes=NOTES,
    )
)


def _vsd_random(rng, B, C, D):  # noqa: N803
    shape = (B, D) if rng.integers(0, 2) else (B, C, D)
    x = rng.standard_normal(shape)
    teacher = x + rng.standard_normal(shape) * 0.5
    fake = teacher + rng.standard_normal(shape) * 0.2
    h = rng.uniform(0.1, 2.0, B)
    return Sample(
        "random",
        (x, fake, teacher, h),
        flags=("CUSTOM_VJP",),
        fd=False,
        comment="custom VJP: compared with the stated formula, never with finite differences",
    )


def _vsd_edges():
    rng = np.random.default_rng(13)
    x = rng.standard_normal((2, 3, 4, 4))
    return [
        Sample(
            "known value",
            (np.array([[1.0, 1.0]]), np.array([[0.0, 2.0]]), np.array([[0.0, 0.0]]), np.array([1.0])),
            flags=("CUSTOM_VJP",),
            fd=False,
            comment="w = 1/(1 + 1e-6), L = w² = 0.999998; x̄ = (0, w)",
        ),
        Sample(
            "x equals the teacher's prediction",
            (x[0], x[0] + 0.01, x[0].copy(), np.array([1.0, 0.5, 2.0])),
            flags=("AT_TEACHER", "CUSTOM_VJP"),
            fd=False,
        ),
        Sample(
            "images (B, C, H, W), DMD2 weights h = 1",
            (x, x + 0.3 * rng.standard_normal(x.shape), x + 0.5 * rng.standard_normal(x.shape), np.ones(2)),
            flags=("IMAGES", "CUSTOM_VJP"),
            fd=False,
        ),
        Sample(
            "one feature per sample (B,)",
            (np.array([0.5, -1.0]), np.array([1.0, 0.0]), np.array([0.0, 0.5]), np.array([1.0, 3.0])),
            flags=("CUSTOM_VJP",),
            fd=False,
        ),
    ]


def _vsd_errors():
    x = np.zeros((2, 3))
    return [
        ErrorCase("weights of another length", (x, x, x, np.ones(3)), match=r"shape \(B,\) = \(2,\)"),
        ErrorCase(
            "0-d samples", (np.array(1.0), np.array(1.0), np.array(1.0), np.ones(1)), match="at least 1-D"
        ),
    ]


def _vsd_torch(torch, args, kwargs, cotangent):
    """½·mean((x − sg[x − vsd_grad])²) with the weight w = h/(mean|x − x0_teacher| + 1e-6) detached."""
    x = torch.from_numpy(args[0]).requires_grad_()
    fake, teacher, h = (torch.from_numpy(a) for a in args[1:])
    g = torch.from_numpy(cotangent)
    batch, ones = x.shape[0], (1,) * (x.dim() - 1)

    def step():
        x.grad = None
        with torch.no_grad():
            distance = (x - teacher).abs().reshape(batch, -1).mean(1)
            w = (h / (distance + 1e-6)).reshape(batch, *ones)
            target = x - (fake - teacher) * w
        difference = x - target
        loss = 0.5 * (difference * difference).mean()
        loss.backward(g)
        return loss

    return step


register(
    OpCases(
        "vsd_loss",
        dims={"B": (1, 4), "C": (1, 3), "D": (1, 5)},
        random=_vsd_random,
        edges=_vsd_edges,
        errors=_vsd_errors,
        notes=NOTES,
        bench=Bench(
            sizes={"B": "rows", "C": 1, "D": "cols"},
            torch=_vsd_torch,
            torch_label="weight and stop-gradient target under no_grad, ½·mean of squares; autograd backward",
        ),
    )
)


# -- transcriptions of the official code's deviations (``refimpl deviations``) ------------------------
@transcribes("fastgen-rkl-weighting-typeerror", outputs=("h",))
def _official_f_divergence_weight(logit, time_bin, *, dtype, divergence, **options):
    """NVlabs/FastGen: the 'rkl' weighting is a 0-d tensor, and ``len(h)`` of it raises."""
    if divergence == "rkl":
        raise TypeError("len() of a 0-d tensor")
    return {"h": refimpl.get("f_divergence_weight")(logit, time_bin, divergence=divergence, **options)}
