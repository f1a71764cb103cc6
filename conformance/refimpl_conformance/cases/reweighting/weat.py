"""Conformance cases for `energy_instance_weight` and `weat_loss` (WEAT: the energy instance
weights, and the weighted TRADES loss)."""

from __future__ import annotations

import numpy as np

from ..._cases import Bench, ErrorCase, Known, OpCases, Sample, register
from ...deviations import transcribes

NOTES = {
    "SOFTPLUS_OVERFLOW": "|E| > 88.7 (float32) or > 709.8 (float64): log(1 + exp(|E|)) overflows and gives "
    "w = 0 (the official code); |E| + log1p(exp(−|E|)) gives w ≈ 1/|E|",
    "LSE_OVERFLOW": "logits ~1e4: a log-sum-exp without the max shift overflows",
    "ZERO_ENERGY": "E = 0: w = 1/log 2, the maximum",
    "SIGN": "E and −E give the same weight",
    "ONE_CLASS": "K = 1: E = −z",
    "HUGE_ENERGY": "|E| ~ 1e30: w ~ 1e-30, still positive and finite",
}

LOG_E_MINUS_1 = float(np.log(np.e - 1))  # |E| = log(e − 1): softplus(|E|) = 1, w = 1


def _random(rng, B, K):
    scale = float(rng.choice([0.3, 3.0, 20.0]))
    offset = float(rng.choice([0.0, -5.0, 5.0, -150.0, 150.0]))  # |E| past float32's exp overflow
    return Sample("random", (rng.standard_normal((B, K)) * scale + offset,))


def _edges():
    rng = np.random.default_rng(89)
    return [
        Sample(
            "E = 0",
            (np.array([[0.0]]),),
            flags=("ZERO_ENERGY", "ONE_CLASS"),
            comment="1/log 2",
        ),
        Sample(
            "E = 0, two classes",
            (np.array([[np.log(0.5), np.log(0.5)], [np.log(0.25), np.log(0.75)]]),),
            flags=("ZERO_ENERGY",),
            comment="LSE = 0 in both rows: 1/log 2",
        ),
        Sample(
            "E = ∓log(e − 1)",
            (np.array([[LOG_E_MINUS_1], [-LOG_E_MINUS_1]]),),
            flags=("SIGN", "ONE_CLASS"),
            comment="softplus(|E|) = 1: w = 1 for both signs",
        ),
        Sample(
            "E = ∓3.7, K = 4",
            (np.stack([np.log(np.full(4, np.exp(3.7) / 4)), np.log(np.full(4, np.exp(-3.7) / 4))]),),
            flags=("SIGN",),
        ),
        Sample(
            "|E| = 100",
            (np.array([[100.0, 0.0], [-100.0, -100.0 - np.log(3.0)]]),),
            flags=("SOFTPLUS_OVERFLOW",),
            comment="float32 exp(100) = inf: the official weights are 0, here 1/100 and 1/(100 − log(4/3))",
        ),
        Sample(
            "|E| = 800",
            (np.array([[800.0, 799.0, -3.0], [-800.0, -801.0, -800.5]]),),
            flags=("SOFTPLUS_OVERFLOW",),
            comment="float64 exp(800) = inf too",
        ),
        Sample(
            "logits ~1e4",
            (1e4 + rng.standard_normal((3, 5)),),
            flags=("LSE_OVERFLOW", "SOFTPLUS_OVERFLOW"),
        ),
        Sample(
            "|E| ~ 1e30",
            (np.array([[1e30, 0.0], [-1e30, -2e30]]),),
            flags=("HUGE_ENERGY",),
            comment="w = 1e-30 in both rows",
        ),
        Sample("one row", (rng.standard_normal((1, 7)),)),
    ]


def _known():
    return [
        Known(
            "E = 0: w = 1/log 2",
            (np.array([[np.log(0.5), np.log(0.5)]]),),
            values={"weights": [1 / np.log(2.0)]},
            source="by hand: softplus(0) = log 2",
            rtol=1e-15,
        ),
        Known(
            "|E| = log(e − 1): w = 1, both signs",
            (np.array([[LOG_E_MINUS_1], [-LOG_E_MINUS_1]]),),
            values={"weights": [1.0, 1.0]},
            source="by hand: softplus(log(e − 1)) = log(e) = 1",
            rtol=1e-15,
        ),
        Known(
            "|E| = 100 + log1p(e^−100): w = 1/100 (the official code gives 0 in float32)",
            (np.array([[100.0, 0.0]], dtype=np.float32),),
            values={"weights": [0.01]},
            source="by hand: softplus(100) = 100 + 4e-44",
            rtol=1e-7,
        ),
    ]


register(
    OpCases(
        "energy_instance_weight",
        dims={"B": (1, 8), "K": (1, 10)},
        random=_random,
        edges=_edges,
        notes=NOTES,
        known=_known,
        defaults={},
    )
)


# -- transcriptions of the official code's deviations (``refimpl deviations``) ------------------------
@transcribes("weat-weight-softplus-overflow", outputs=("weights",))
def _official_energy_instance_weight(z_nat, *, dtype):
    """``compute_weights`` of the official WEAT_loss.py in the input dtype: the energy by a
    (stable) log-sum-exp, then ``1/log(1 + exp(|E|))``, whose exp overflows to inf."""
    z = z_nat.astype(dtype)
    m = z.max(axis=-1, keepdims=True)
    energy = -(m[..., 0] + np.log(np.exp(z - m).sum(axis=-1)))
    with np.errstate(over="ignore"):
        return {"weights": 1 / np.log(1 + np.exp(np.abs(energy)))}


# -- weat_loss ----------------------------------------------------------------------------------------
LOSS_NOTES = {
    "EQUAL_PREDICTIONS": "z_adv = z_nat: KL = 0 and both KL cotangents vanish; only the weighted CE is left",
    "ONE_CLASS": "K = 1: CE = KL = 0, the loss and both cotangents are exactly 0",
    "LSE_OVERFLOW": "logits ~1e4: a softmax or log-sum-exp without the max shift overflows",
    "SOFTPLUS_OVERFLOW": "|E| = 100: the official log(1 + exp(|E|)) gives w = 0 in float32 (the whole row "
    "drops out); the stable softplus gives w = 1/100",
    "Q_UNDERFLOW": "q_k below 1e-12 (float64) or 0 (float32) where p_k is not: log q must come from the "
    "log-softmax (log of an underflowed q is −inf, and the official log(q + 1e-12) caps it at −27.6)",
    "P_UNDERFLOW": "p_k = 0 in the dtype: the KL term 0·(log p − log q) must be 0, not NaN",
    "BETA_ZERO": "β = 0: the weighted cross-entropy alone; the natural logits of weat_adv get no gradient",
    "SHIFT": "a constant added to a row of z_adv leaves the loss unchanged (not for z_nat: the weight moves)",
}


def _loss_random(rng, B, K):
    scale = float(rng.choice([0.3, 2.0, 8.0]))
    offset = float(
        rng.choice([0.0, -4.0, 6.0, -120.0])
    )  # energies of both signs; |E| past exp's float32 range
    z_nat = rng.standard_normal((B, K)) * scale + offset
    perturbation = float(rng.choice([0.05, 1.0, 5.0]))
    z_adv = z_nat + rng.standard_normal((B, K)) * perturbation + float(rng.choice([0.0, 3.0]))
    kwargs = {"variant": str(rng.choice(["weat_adv", "weat_nat"]))}
    beta = rng.choice([-1.0, 0.0, 1.0, 6.0, 7.0])  # −1: not given, the variant's default
    if beta >= 0:
        kwargs["beta"] = float(beta)
    return Sample("random", (z_nat, z_adv, rng.integers(0, K, size=B)), kwargs)


def _loss_edges():
    rng = np.random.default_rng(152)
    z = rng.standard_normal((4, 5)) * 2
    y = np.array([0, 4, 2, 2])
    confident = np.array([[0.0, 40.0, -3.0], [-2.0, 1.0, 35.0]])  # p on class 1 / class 2
    wrong = np.array([[40.0, 0.0, 1.0], [30.0, -1.0, -5.0]])  # q on class 0: q_y ~ e^-40
    far = np.array([[0.0, 120.0, -1.0], [0.5, -200.0, 130.0]])  # exp(−120) = 0 in float32
    return [
        Sample(
            "z_adv = z_nat, weat_adv", (z, z.copy(), y), {"variant": "weat_adv"}, flags=("EQUAL_PREDICTIONS",)
        ),
        Sample(
            "z_adv = z_nat, weat_nat", (z, z.copy(), y), {"variant": "weat_nat"}, flags=("EQUAL_PREDICTIONS",)
        ),
        Sample(
            "K = 1",
            (np.array([[0.3], [-2.0]]), np.array([[1.5], [4.0]]), np.array([0, 0])),
            {"variant": "weat_adv"},
            flags=("ONE_CLASS",),
            comment="the loss and both cotangents are exactly 0",
        ),
        Sample(
            "logits ~1e4",
            (1e4 + z, 1e4 + z + rng.standard_normal((4, 5)), y),
            {"variant": "weat_nat", "beta": 3.0},
            flags=("LSE_OVERFLOW", "SOFTPLUS_OVERFLOW"),
            dtypes=("float64",),
            comment="float32 keeps 3 digits of 1e4 + O(1): the inputs themselves lose them",
        ),
        Sample(
            "|E| = 100",
            (
                np.array([[100.0, 0.0], [-100.0, -100.0 - np.log(3.0)]]),
                np.array([[99.0, 1.0], [-99.0, -101.0]]),
                np.array([0, 1]),
            ),
            {"variant": "weat_adv"},
            flags=("SOFTPLUS_OVERFLOW",),
        ),
        Sample(
            "q_y ~ e^-40, weat_adv",
            (confident, wrong, np.array([1, 2])),
            {"variant": "weat_adv"},
            flags=("Q_UNDERFLOW",),
            comment="the official log(q + 1e-12) caps −log q at 27.6 here",
        ),
        Sample(
            "q_y ~ e^-40, weat_nat",
            (confident, wrong, np.array([1, 2])),
            {"variant": "weat_nat", "beta": 1.0},
            flags=("Q_UNDERFLOW",),
        ),
        Sample(
            "p and q underflow",
            (far, far[::-1].copy(), np.array([2, 0])),
            {"variant": "weat_adv"},
            flags=("Q_UNDERFLOW", "P_UNDERFLOW"),
            comment="float32 exp underflows to 0 below −104: 0·(log p − log q) terms",
        ),
        Sample(
            "β = 0, weat_adv",
            (z, z + 0.5 * rng.standard_normal((4, 5)), y),
            {"variant": "weat_adv", "beta": 0.0},
            flags=("BETA_ZERO",),
        ),
        Sample(
            "β = 0, weat_nat",
            (z, z + 0.5 * rng.standard_normal((4, 5)), y),
            {"variant": "weat_nat", "beta": 0.0},
            flags=("BETA_ZERO",),
        ),
        Sample("one row", (z[:1], z[:1] + rng.standard_normal((1, 5)), y[:1]), {"variant": "weat_nat"}),
    ]


def _loss_errors():
    z, y = np.zeros((2, 3)), np.array([0, 2])
    return [
        ErrorCase("variant not given", (z, z, y), {}, match="variant"),
        ErrorCase("variant 'trades'", (z, z, y), {"variant": "trades"}, match="weat_adv"),
    ]


def _loss_known():
    log_e_minus_1 = LOG_E_MINUS_1
    return [
        Known(
            "p = q = (1/2, 1/2): L = log 2/log 3",
            (np.zeros((1, 2)), np.zeros((1, 2)), np.array([0])),
            {"variant": "weat_adv"},
            values={"loss": np.log(2.0) / np.log(3.0)},
            source="by hand: KL = 0, CE = log 2, E = −log 2, w = 1/log(1 + 2)",
            rtol=1e-15,
        ),
        Known(
            "w = 1, K = 2, weat_adv, default β = 7",
            # z_nat = log(e − 1) + log(3/4, 1/4): LSE = log(e − 1), p = (3/4, 1/4)
            (
                np.array([[log_e_minus_1 + np.log(0.75), log_e_minus_1 + np.log(0.25)]]),
                np.zeros((1, 2)),
                np.array([1]),
            ),
            {"variant": "weat_adv"},
            values={
                "loss": np.log(2.0) + 7.0 * (0.75 * np.log(1.5) + 0.25 * np.log(0.5)),
                # z̄_adv = w/B (β(q − p) + q − e_y) = 7·(−1/4, 1/4) + (1/2, −1/2)
                "cotangent of 'z_adv'": [[7.0 * -0.25 + 0.5, 7.0 * 0.25 - 0.5]],
            },
            source="by hand: p = (3/4, 1/4), q = (1/2, 1/2), |E| = log(e − 1): w = 1; CE = log 2",
            rtol=1e-14,
        ),
        Known(
            "w = 1, K = 2, weat_nat, default β = 6",
            (
                np.array([[log_e_minus_1 + np.log(0.75), log_e_minus_1 + np.log(0.25)]]),
                np.zeros((1, 2)),
                np.array([1]),
            ),
            {"variant": "weat_nat"},
            values={
                "loss": np.log(4.0) + 6.0 * (0.75 * np.log(1.5) + 0.25 * np.log(0.5)),
                # z̄_nat = β p (log p − log q − KL) + p − e_y, KL = (3/4) log(3/2) + (1/4) log(1/2)
                "cotangent of 'z_nat'": [
                    [
                        6.0 * 0.75 * (np.log(1.5) - (0.75 * np.log(1.5) + 0.25 * np.log(0.5))) + 0.75,
                        6.0 * 0.25 * (np.log(0.5) - (0.75 * np.log(1.5) + 0.25 * np.log(0.5))) - 0.75,
                    ]
                ],
            },
            source="by hand: p = (3/4, 1/4), q = (1/2, 1/2), w = 1; CE = −log p_1 = log 4",
            rtol=1e-14,
        ),
    ]


def _weat_loss_stated(args, kwargs, cotangents):
    """The stated backward at fixed (detached) weights, float64, independently of the reference:
    z̄_adv = c (β (q − p) + [weat_adv] (q − e_y)), and for z_nat the pairwise form of
    p_j (d_j − KL) = p_j Σ_k p_k (d_j − d_k), d = log p − log q (exact for Σ p = 1, and free of
    the cancellation at a near one-hot p), plus [weat_nat] (p − e_y); c = L̄ w/B."""
    z_nat, z_adv = (np.asarray(a, dtype=np.float64) for a in args[:2])
    y = np.asarray(args[2])
    variant = kwargs["variant"]
    beta = kwargs.get("beta")
    beta = {"weat_adv": 7.0, "weat_nat": 6.0}[variant] if beta is None else beta
    g_loss = float(np.asarray(cotangents[0]))
    batch, classes = z_nat.shape
    g_nat, g_adv = np.zeros_like(z_nat), np.zeros_like(z_adv)
    for i in range(batch):
        lse_p = np.logaddexp.reduce(z_nat[i])
        lse_q = np.logaddexp.reduce(z_adv[i])
        p, q = np.exp(z_nat[i] - lse_p), np.exp(z_adv[i] - lse_q)
        c = g_loss / np.logaddexp(0.0, abs(lse_p)) / batch  # w = 1/softplus(|E|), held fixed
        others = np.arange(classes) != y[i]
        ce_nat = np.where(others, p, -p[others].sum())  # p − e_y, its label entry −Σ_{k≠y} p_k
        ce_adv = np.where(others, q, -q[others].sum())
        # d_j − d_k = (z_nat,j − z_nat,k) − (z_adv,j − z_adv,k): the log-sum-exps cancel
        pairwise = (z_nat[i][:, None] - z_nat[i][None, :]) - (z_adv[i][:, None] - z_adv[i][None, :])
        g_nat[i] = c * (beta * p * (pairwise @ p) + (ce_nat if variant == "weat_nat" else 0.0))
        g_adv[i] = c * (beta * (q - p) + (ce_adv if variant == "weat_adv" else 0.0))
    return [g_nat, g_adv]


def _weat_loss_torch(torch, args, kwargs, cotangent):
    """F.cross_entropy and Σ p (log p − log q) over F.log_softmax, weights 1/F.softplus(|logsumexp|)
    under no_grad, weighted mean; autograd backward into both logits."""
    F = torch.nn.functional
    z_nat, z_adv = (torch.from_numpy(a).requires_grad_() for a in args[:2])
    y = torch.from_numpy(args[2]).long()
    g = torch.from_numpy(np.asarray(cotangent))
    variant = kwargs["variant"]
    beta = kwargs.get("beta")
    beta = {"weat_adv": 7.0, "weat_nat": 6.0}[variant] if beta is None else beta

    def step():
        z_nat.grad = z_adv.grad = None
        with torch.no_grad():  # the detached energy weight; threshold=inf: the exact softplus
            weights = 1 / F.softplus(torch.logsumexp(z_nat, 1).abs(), threshold=float("inf"))
        log_p, log_q = F.log_softmax(z_nat, 1), F.log_softmax(z_adv, 1)
        kl = (log_p.exp() * (log_p - log_q)).sum(1)
        cross_entropy = F.nll_loss(log_q if variant == "weat_adv" else log_p, y, reduction="none")
        loss = (weights * (cross_entropy + beta * kl)).mean()
        loss.backward(g)
        return loss

    return step


register(
    OpCases(
        "weat_loss",
        dims={"B": (1, 7), "K": (2, 9)},  # K = 1 is an edge case
        random=_loss_random,
        edges=_loss_edges,
        errors=_loss_errors,
        notes=LOSS_NOTES,
        known=_loss_known,
        stated_vjp=_weat_loss_stated,
        defaults={"beta": None},  # None: the variant's official default, 7 (weat_adv) or 6 (weat_nat)
        bench=Bench(
            sizes={"B": "rows", "K": "cols"},
            kwargs={"variant": "weat_adv"},
            torch=_weat_loss_torch,
            torch_label="F.log_softmax of both logits, nll_loss + β Σ p(log p − log q), weights "
            "1/F.softplus(|logsumexp|) under no_grad, mean; autograd backward",
            # exp of every natural and adversarial logit (p and q, each once), the two row logs of
            # the log-sum-exps, and the weight's exp(−|E|) and log1p per row
            transcendentals=lambda args, kwargs: 2 * args[0].size + 4 * args[0].shape[0],
        ),
    )
)


@transcribes("weat-kl-log-q-plus-1e-12", outputs=("loss",))
def _official_weat_loss(z_nat, z_adv, y, *, variant, beta, dtype):
    """``WEAT_adv``/``WEAT_nat`` of the official WEAT_loss.py from the logits on, in the input dtype:
    ``F.cross_entropy`` on the variant's logits, the KL with ``log(softmax(z_adv) + 1e-12)``
    (``nn.KLDivLoss(reduction='none')``, summed over classes), the detached weights of
    ``compute_weights`` (whose own overflow is the deviation ``weat-weight-softplus-overflow``)."""
    z_nat, z_adv = z_nat.astype(dtype), z_adv.astype(dtype)
    beta = {"weat_adv": 7.0, "weat_nat": 6.0}[variant] if beta is None else beta
    rows = np.arange(z_nat.shape[0])

    def log_softmax(z):
        shifted = z - z.max(axis=1, keepdims=True)
        return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))

    log_p, log_q = log_softmax(z_nat), log_softmax(z_adv)
    p, q = np.exp(log_p), np.exp(log_q)
    with np.errstate(divide="ignore", invalid="ignore"):
        kl = np.where(p > 0, p * (np.log(p) - np.log(q + np.dtype(dtype).type(1e-12))), 0).sum(
            axis=1
        )  # xlogy: 0 where p = 0
    cross_entropy = -(log_q if variant == "weat_adv" else log_p)[rows, y]
    weights = _official_energy_instance_weight(z_nat, dtype=dtype)["weights"]
    return {"loss": (weights * cross_entropy).sum() / len(rows) + beta * (kl * weights).sum() / len(rows)}
