"""Conformance cases for `a2pr_value_target`, `a2pr_actor_loss` and `a2pr_vae_loss`."""

from __future__ import annotations

import numpy as np

from ..._cases import Bench, ErrorCase, Known, OpCases, Sample, register

VALUE_TARGET_NOTES = {
    "TERMINAL": "not_done = 0: the target is the reward alone, whatever the critics say",
    "NO_DISCOUNT": "γ = 0: the target is the reward alone",
    "UNDISCOUNTED": "γ = 1: r + min of the four critic heads",
    "ONLINE_LOWER": "the online critic is the pessimistic one: its TD target wins the min",
    "TARGET_LOWER": "the target critic is the pessimistic one: TD3's critic target wins the min",
    "SECOND_HEAD": "the second head of each critic is the smaller one (a port reading Q1 only fails)",
    "TIES": "equal heads and equal critics: the min of equal values is that value",
    "NEGATIVE_Q": "negative rewards and values (costs): the min picks the most negative, not |·|",
    "LARGE_VALUES": "returns of 1e6 with rewards of O(1): r + γQ rounds once, nothing cancels",
    "PARTIAL_MASK": "not_done in (0, 1): a soft continuation weight scales the bootstrap",
}


def _random(rng, B):
    scale = float(rng.choice([1.0, 30.0, 300.0]))
    reward = rng.standard_normal(B) * float(rng.choice([0.1, 1.0, 5.0]))
    not_done = (rng.random(B) > 0.2).astype(float)  # some terminal transitions
    heads = rng.standard_normal((4, B)) * scale + scale * float(rng.uniform(-1.0, 2.0))
    return Sample(
        "random",
        (reward, not_done, heads[0], heads[1], heads[2], heads[3]),
        {"discount": float(rng.choice([0.9, 0.99, 0.995, float(rng.uniform(0.0, 1.0))]))},
    )


def _edges():
    reward = np.array([1.0, -0.5, 2.0])
    ones = np.ones(3)
    low, high = np.array([3.0, -2.0, 10.0]), np.array([4.0, 5.0, 11.0])
    return [
        Sample(
            "terminal transitions",
            (reward, np.zeros(3), low, high, high, low),
            {"discount": 0.99},
            flags=("TERMINAL",),
            comment="= reward: [1, −0.5, 2]",
        ),
        Sample("γ = 0", (reward, ones, low, high, low, high), {"discount": 0.0}, flags=("NO_DISCOUNT",)),
        Sample(
            "γ = 1",
            (reward, ones, high, high + 1.0, low, high),
            {"discount": 1.0},
            flags=("UNDISCOUNTED", "ONLINE_LOWER"),
            comment="r + low: [4, −2.5, 12]",
        ),
        Sample(
            "target critic lower",
            (reward, ones, low, high, high, high + 2.0),
            {"discount": 0.9},
            flags=("TARGET_LOWER",),
        ),
        Sample(
            "second heads lower",
            (reward, ones, high, low, high + 1.0, low - 1.0),
            {"discount": 0.99},
            flags=("SECOND_HEAD", "ONLINE_LOWER"),
        ),
        Sample(
            "all heads equal",
            (reward, ones, low, low.copy(), low.copy(), low.copy()),
            {"discount": 0.99},
            flags=("TIES",),
        ),
        Sample(
            "negative rewards and values",
            (
                np.array([-1.0, -3.0]),
                np.ones(2),
                np.array([-50.0, -2.0]),
                np.array([-40.0, -9.0]),
                np.array([-45.0, -1.0]),
                np.array([-60.0, -8.0]),
            ),
            {"discount": 0.99},
            flags=("NEGATIVE_Q",),
            comment="r + 0.99·[−60, −9] = [−60.4, −11.91]",
        ),
        Sample(
            "returns of 1e6",
            (
                np.array([0.25, 1.0]),
                np.ones(2),
                np.array([1e6, 2e6]),
                np.array([1e6 + 3.0, 2e6 - 1.0]),
                np.array([1e6 + 1.0, 2e6 + 5.0]),
                np.array([1e6 - 2.0, 2e6]),
            ),
            {"discount": 0.99},
            flags=("LARGE_VALUES",),
        ),
        Sample(
            "soft continuation weights",
            (reward, np.array([0.0, 0.5, 1.0]), low, high, high, low),
            {"discount": 0.99},
            flags=("PARTIAL_MASK",),
        ),
        Sample(
            "one transition",
            (np.array([0.3]), np.ones(1), np.array([2.0]), np.array([1.5]), np.array([1.7]), np.array([2.2])),
            {"discount": 0.99},
        ),
    ]


def _errors():
    x = np.array([1.0, 2.0])
    return [
        ErrorCase(
            "not_done negative",
            (x, np.array([1.0, -1.0]), x, x, x, x),
            {"discount": 0.99},
            match=r"'not_done'.*\[0, 1\].*index 1",
        ),
        ErrorCase(
            "not_done above 1",
            (x, np.array([2.0, 1.0]), x, x, x, x),
            {"discount": 0.99},
            match=r"'not_done'.*\[0, 1\].*index 0",
        ),
    ]


def _known():
    return [
        Known(
            "one of each: online lower, target lower, terminal",
            (
                np.array([1.0, 0.5, 2.0]),
                np.array([1.0, 1.0, 0.0]),
                np.array([10.0, 4.0, 7.0]),
                np.array([12.0, 3.0, 8.0]),
                np.array([11.0, 6.0, 1.0]),
                np.array([9.0, 5.0, 1.0]),
            ),
            {"discount": 0.5},
            values={"value_target": [5.5, 2.0, 2.0]},
            source="by hand: row 0 min(1 + 0.5·10, 1 + 0.5·9) = 5.5; row 1 min(0.5 + 0.5·3, "
            "0.5 + 0.5·5) = 2; row 2 terminal: r = 2",
            rtol=0.0,
        ),
        Known(
            "the default γ = 0.99",
            (
                np.array([1.0]),
                np.array([1.0]),
                np.array([100.0]),
                np.array([200.0]),
                np.array([150.0]),
                np.array([120.0]),
            ),
            values={"value_target": [100.0]},
            source="by hand: 1 + 0.99·min(100, 200, 150, 120) = 100",
            rtol=1e-15,
        ),
    ]


register(
    OpCases(
        "a2pr_value_target",
        dims={"B": (1, 12)},
        random=_random,
        edges=_edges,
        errors=_errors,
        known=_known,
        notes=VALUE_TARGET_NOTES,
        defaults={"discount": 0.99},
    )
)


# ---------------------------------------------------------------------------------------------
# a2pr_actor_loss

ACTOR_NOTES = {
    "NO_BC_ROWS": "rows with q_a ≤ v and q_recon < v: m = 0, no BC gradient reaches π there",
    "DATA_TARGET": "A_π < A_a everywhere: the target is the dataset action and ã gets no cotangent",
    "TIES": "q_recon = q_a picks ã (≥); q_recon = v counts (≥), q_a = v does not (>)",
    "ADVANTAGE_ROUNDING": "v = −1e8: fl(q_recon − v) = fl(q_a − v) although q_recon < q_a; the "
    "code compares advantages, so ã is the target (a port comparing q_recon ≥ q_a picks a)",
    "NEGATIVE_Q": "negative critic values: λ divides by mean|Q|, not |mean Q|",
    "LARGE_Q": "Q ~ 1e6: λ ~ 1e-6 and L_actor = −α Σq/Σ|q| stays O(α)",
    "SCRIPT_MASK": "bc_weight = 0.5, the training script's --mask default",
    "ONE_ROW": "B = 1, A = 1",
}


def _actor_random(rng, B, A):
    scale = float(rng.choice([0.3, 1.0, 3.0]))
    pi, a, a_recon = (rng.standard_normal((B, A)) * scale for _ in range(3))
    level = float(rng.choice([1.0, 30.0, 300.0]))
    offset = level * float(rng.uniform(-1.0, 2.0))
    q_pi, q_a, q_recon, v = (rng.standard_normal(B) * level + offset for _ in range(4))
    kwargs = {"alpha": float(rng.choice([2.5, 1.0, 4.0])), "bc_weight": float(rng.choice([1.0, 0.5, 2.0]))}
    return Sample("random", (pi, a, a_recon, q_pi, q_a, q_recon, v), kwargs)


def _actor_edges():
    rng = np.random.default_rng(62)
    pi, a, a_recon = (rng.standard_normal((4, 3)) for _ in range(3))
    q_pi = np.array([5.0, 6.0, 4.0, 7.0])
    return [
        Sample(
            "m = 0 in rows 1 and 3",
            (
                pi,
                a,
                a_recon,
                q_pi,
                np.array([3.0, 0.0, 1.0, -1.0]),
                np.array([2.0, -1.0, 5.0, 0.5]),
                np.ones(4),
            ),
            flags=("NO_BC_ROWS",),
            comment="rows 1, 3: q_a ≤ 1 and q_recon < 1",
        ),
        Sample(
            "A_π < A_a in every row",
            (
                pi,
                a,
                a_recon,
                q_pi,
                np.array([3.0, 2.0, 9.0, 4.0]),
                np.array([2.0, -1.0, 5.0, 3.5]),
                np.ones(4),
            ),
            flags=("DATA_TARGET",),
            comment="ā_recon = 0",
        ),
        Sample(
            "ties: q_recon = q_a, q_recon = v, q_a = v",
            (
                pi,
                a,
                a_recon,
                q_pi,
                np.array([2.0, 1.0, 1.0, 0.0]),
                np.array([2.0, 1.0, 3.0, 1.0]),
                np.ones(4),
            ),
            flags=("TIES",),
            comment="m = [2, 1, 1, 1]; targets ã, ã, ã, ã",
        ),
        Sample(
            "advantages equal after rounding at v = −1e8",
            (
                pi[:2],
                a[:2],
                a_recon[:2],
                q_pi[:2],
                np.array([1.0 + 1e-9, 2.0]),
                np.array([1.0, 3.0]),
                np.array([-1e8, 0.0]),
            ),
            flags=("ADVANTAGE_ROUNDING",),
            dtypes=("float64",),
            comment="float32 cannot hold 1 + 1e-9",
        ),
        Sample(
            "negative Q values",
            (
                pi,
                a,
                a_recon,
                -q_pi,
                np.array([-3.0, -9.0, -1.0, -4.0]),
                np.array([-2.0, -1.0, -5.0, -3.5]),
                -np.full(4, 3.0),
            ),
            flags=("NEGATIVE_Q",),
        ),
        Sample(
            "Q ~ 1e6",
            (
                pi,
                a,
                a_recon,
                q_pi * 1e6,
                np.array([3e6, 2e6, 9e6, 4e6]),
                np.array([2e6, 5e6, 5e6, 3.5e6]),
                np.full(4, 3e6),
            ),
            flags=("LARGE_Q",),
        ),
        Sample(
            "bc_weight 0.5 (the script's --mask)",
            (
                pi,
                a,
                a_recon,
                q_pi,
                np.array([3.0, 0.0, 9.0, 4.0]),
                np.array([2.0, 1.0, 5.0, 3.5]),
                np.ones(4),
            ),
            {"alpha": 2.5, "bc_weight": 0.5},
            flags=("SCRIPT_MASK",),
        ),
        Sample(
            "one row, one action dimension",
            (
                np.array([[0.3]]),
                np.array([[-0.2]]),
                np.array([[0.5]]),
                np.array([-2.0]),
                np.array([1.0]),
                np.array([1.5]),
                np.array([0.0]),
            ),
            flags=("ONE_ROW",),
        ),
    ]


def _actor_errors():
    x = np.ones((2, 1))
    q = np.array([1.0, 2.0])
    return [
        ErrorCase(
            "q_pi all zero",
            (x, x, x, np.zeros(2), q, q, q),
            match=r"'q_pi'.*nonzero.*all values are 0",
        ),
    ]


def _actor_known():
    args = (
        np.array([[1.0], [0.0]]),
        np.array([[0.0], [2.0]]),
        np.array([[3.0], [1.0]]),
        np.array([1.0, 3.0]),
        np.array([2.0, 5.0]),
        np.array([4.0, 0.0]),
        np.ones(2),
    )
    return [
        Known(
            "two rows: ã target with m = 2, dataset target with m = 1",
            args,
            values={
                "loss": 3.5,
                "cotangent of 'pi'": [[-4.0], [-2.0]],  # 2 m (π − target)/(B A)
                "cotangent of 'q_pi'": [-0.625, -0.625],  # −λ/B, λ = 2.5/2
                "cotangent of 'a_recon'": [[4.0], [0.0]],
            },
            source="by hand: λ = 2.5/mean(1, 3) = 1.25, L_actor = −1.25·2 = −2.5; row 0: A_π = 3 ≥ "
            "A_a = 1, m = 2, (1 − 3)² = 4; row 1: A_π = −1 < 4, m = 1 (q_recon = 0 < v), (0 − 2)² = 4; "
            "L_bc = (2·4 + 1·4)/2 = 6",
            rtol=1e-15,
        ),
        Known(
            "bc_weight 0.5, α = 1",
            args,
            {"alpha": 1.0, "bc_weight": 0.5},
            values={"loss": -1.0 + 3.0, "cotangent of 'q_pi'": [-0.25, -0.25]},
            source="by hand: L_actor = −(1/2)·2 = −1; L_bc = 0.5·6 = 3",
            rtol=1e-15,
        ),
    ]


def _actor_stated(args, kwargs, cotangents):
    """The stated backward at fixed λ, float64, row by row: π̄ = 2L̄ m_i (π_i − target_i)/(BA),
    ā_recon = −π̄ where ã is the target, q̄_pi = −L̄ λ/B with λ = α/mean|q_pi|."""
    pi, a, a_recon, q_pi, q_a, q_recon, v = (np.asarray(x, dtype=np.float64) for x in args)
    alpha, bc_weight = kwargs.get("alpha", 2.5), kwargs.get("bc_weight", 1.0)
    g_loss = float(np.asarray(cotangents[0]))
    batch, action_dim = pi.shape
    g_pi, g_a_recon = np.zeros_like(pi), np.zeros_like(pi)
    for i in range(batch):
        recon_wins = (q_recon[i] - v[i]) >= (q_a[i] - v[i])
        m = bc_weight * (float(q_recon[i] >= v[i]) + float(q_a[i] > v[i]))
        target = a_recon[i] if recon_wins else a[i]
        g_pi[i] = 2.0 * g_loss * m * (pi[i] - target) / (batch * action_dim)
        if recon_wins:
            g_a_recon[i] = -g_pi[i]
    lam = alpha / (np.sum(np.abs(q_pi)) / batch)
    return [g_pi, np.full(batch, -g_loss * lam / batch), g_a_recon]


def _actor_torch(torch, args, kwargs, cotangent):
    """A2PR.train's delayed actor update: λ from Q.abs().mean().detach(), embeddings by the
    advantage comparison, adv = mask·(bool + bool), mean of the masked squares; autograd."""
    pi, a, a_recon, q_pi, q_a, q_recon, v = (torch.from_numpy(x) for x in args)
    pi.requires_grad_()
    q_pi.requires_grad_()
    a_recon.requires_grad_()
    g = torch.from_numpy(np.asarray(cotangent))
    alpha, bc_weight = kwargs.get("alpha", 2.5), kwargs.get("bc_weight", 1.0)

    def step():
        pi.grad = q_pi.grad = a_recon.grad = None
        lam = alpha / q_pi.abs().mean().detach()
        actor_loss = -lam * q_pi.mean()
        advantage_action = (q_a - v)[:, None]
        advantage_pi = (q_recon - v)[:, None]
        target = a_recon * (advantage_pi >= advantage_action) + a * (advantage_action > advantage_pi)
        adv = bc_weight * ((q_recon >= v).to(pi.dtype) + (q_a > v).to(pi.dtype))[:, None]
        loss = actor_loss + (torch.square(pi - target) * adv).mean()
        loss.backward(g)
        return loss

    return step


register(
    OpCases(
        "a2pr_actor_loss",
        dims={"B": (1, 8), "A": (1, 6)},
        random=_actor_random,
        edges=_actor_edges,
        errors=_actor_errors,
        known=_actor_known,
        notes=ACTOR_NOTES,
        stated_vjp=_actor_stated,
        defaults={"alpha": 2.5, "bc_weight": 1.0},
        bench=Bench(
            sizes={"B": "rows", "A": "cols"},
            torch=_actor_torch,
            torch_label="A2PR.train's actor loss: −λ Q.mean() with λ = α/Q.abs().mean().detach(), "
            "embeddings by advantage comparison, (square(π − target)·adv).mean(); autograd backward",
        ),
    )
)


# ---------------------------------------------------------------------------------------------
# a2pr_vae_loss

VAE_NOTES = {
    "NO_POSITIVE_ADVANTAGE": "q_a ≤ v in every row: no reconstruction term, recon gets no gradient",
    "TIE": "q_a = v: not counted (strict >)",
    "CLAMPED": "log_std below −4 or above 15: σ is clamped and log_std gets no gradient there",
    "CLAMP_BOUNDARY": "log_std exactly −4 and 15: torch.clamp passes the gradient on the closed range",
    "PRIOR": "μ = 0, σ = 1: the KL and its gradients are exactly 0",
    "NEAR_UNIT_STD": "log σ = 1e-6: 1 + log σ² − σ² cancels to ~1e-12 ± 1e-16; expm1(2s) − 2s does not",
    "ZERO_WEIGHT": "vae_weight = 0: the KL alone",
    "SHIFTED_CLAMP": "a non-default clamp range [−1, 0.5]",
}


def _vae_random(rng, B, A, Z):
    scale = float(rng.choice([0.3, 1.0, 3.0]))
    recon, a = (rng.standard_normal((B, A)) * scale for _ in range(2))
    mu = rng.standard_normal((B, Z)) * float(rng.choice([0.1, 1.0, 3.0]))
    log_std = rng.standard_normal((B, Z)) * float(rng.choice([0.1, 1.0, 2.0]))
    # some entries below the clamp, 2 from its bound (no difference across the kink); above 15
    # σ² ≥ e³⁰ swamps the loss: the upper side is an edge case
    log_std = np.where(rng.random((B, Z)) < 0.1, -6.0, log_std)
    level = float(rng.choice([1.0, 30.0, 300.0]))
    q_a, v = (rng.standard_normal(B) * level + level for _ in range(2))
    kwargs = {"vae_weight": float(rng.choice([1.0, 0.5, 2.0]))}
    if rng.integers(0, 3) == 0:  # a lower clamp still 1 or more from the entries put below it
        kwargs["log_std_min"] = float(rng.choice([-5.0, -3.0]))
        kwargs["log_std_max"] = 12.0  # above every entry drawn here
    return Sample("random", (recon, a, mu, log_std, q_a, v), kwargs)


def _vae_edges():
    rng = np.random.default_rng(63)
    recon, a = rng.standard_normal((3, 2)), rng.standard_normal((3, 2))
    mu, log_std = rng.standard_normal((3, 4)), rng.standard_normal((3, 4)) * 0.5
    q_a, v = np.array([2.0, -1.0, 5.0]), np.array([1.0, 0.0, 4.0])
    clamped = log_std.copy()
    clamped[0, 0], clamped[2, 3] = -7.0, -4.5
    above = log_std.copy()
    above[1, 2] = 20.0
    boundary = log_std.copy()
    boundary[0, 1], boundary[2, 0] = -4.0, 15.0
    return [
        Sample(
            "q_a ≤ v everywhere",
            (recon, a, mu, log_std, np.array([0.0, -1.0, 4.0]), v),
            flags=("NO_POSITIVE_ADVANTAGE", "TIE"),
            comment="row 2: q_a = v, not counted",
        ),
        Sample("log_std clamped below", (recon, a, mu, clamped, q_a, v), flags=("CLAMPED",)),
        Sample(
            "log_std clamped above",
            (recon, a, mu, above, q_a, v),
            flags=("CLAMPED",),
            fd=False,
            comment="σ² = e³⁰ makes the loss ~1e11: differences of the O(1) terms are lost in it",
        ),
        Sample(
            "log_std on the clamp bounds",
            (recon, a, mu, boundary, q_a, v),
            flags=("CLAMP_BOUNDARY",),
            fd=False,
            comment="a kink: one-sided differences disagree; the closed-range gradient is pinned by a test",
        ),
        Sample(
            "the prior: μ = 0, σ = 1",
            (recon, a, np.zeros((3, 4)), np.zeros((3, 4)), q_a, v),
            flags=("PRIOR",),
        ),
        Sample(
            "log σ = 1e-6, μ = 1e-6",
            (recon, a, np.full((3, 4), 1e-6), np.full((3, 4), 1e-6), q_a, v),
            flags=("NEAR_UNIT_STD",),
        ),
        Sample("vae_weight 0", (recon, a, mu, log_std, q_a, v), {"vae_weight": 0.0}, flags=("ZERO_WEIGHT",)),
        Sample(
            "clamp range [−1, 0.5]",
            (recon, a, mu, np.array([[-2.0, 0.2, 1.0, -0.5]] * 3), q_a, v),
            {"log_std_min": -1.0, "log_std_max": 0.5},
            flags=("SHIFTED_CLAMP",),
        ),
    ]


def _vae_errors():
    x, z = np.ones((2, 1)), np.zeros((2, 2))
    q = np.array([1.0, 2.0])
    return [
        ErrorCase(
            "empty clamp range",
            (x, x, z, z, q, q),
            {"log_std_min": 1.0, "log_std_max": 1.0},
            match=r"'log_std_max'.*log_std_min < log_std_max",
        ),
    ]


def _vae_known():
    return [
        Known(
            "one positive-advantage row, μ = 2 in it",
            (
                np.array([[1.0], [5.0]]),
                np.zeros((2, 1)),
                np.array([[2.0], [0.0]]),
                np.zeros((2, 1)),
                np.array([2.0, 0.0]),
                np.ones(2),
            ),
            values={
                "loss": 1.0,
                "cotangent of 'recon'": [[1.0], [0.0]],  # 2w·1·(1 − 0)/(B A)
                "cotangent of 'mu'": [[0.5], [0.0]],  # ½ μ/n, n = 2
                "cotangent of 'log_std'": [[0.0], [0.0]],  # ½(σ² − 1)/n at σ = 1
            },
            source="by hand: L_rec = (1 + 0)/2 (row 1: q_a = 0 < v = 1); KL = mean(½·2², 0) = 1; 0.5 + 0.5·1",
            rtol=1e-15,
        ),
        Known(
            "σ = 2 and a clamped entry, w = 3",
            (
                np.array([[1.0, -1.0]]),
                np.array([[0.0, 1.0]]),
                np.zeros((1, 2)),
                np.array([[np.log(2.0), -10.0]]),
                np.array([1.0]),
                np.array([0.0]),
            ),
            {"vae_weight": 3.0},
            values={
                # L_rec = 3·(1 + 4)/2 = 7.5; KL = ½[½(3 − 2 ln 2) + ½(e^−8 − 1 + 8)]
                "loss": 7.5 + 0.5 * 0.5 * (0.5 * (3.0 - 2.0 * np.log(2.0)) + 0.5 * (np.exp(-8.0) + 7.0)),
                "cotangent of 'recon'": [[3.0, -6.0]],  # 2·3·(recon − a)/2
                "cotangent of 'log_std'": [[0.75, 0.0]],  # ½(4 − 1)/2; clamped: 0
            },
            source="by hand: log σ = −10 is clamped to −4, σ² = e^−8",
            rtol=1e-14,
        ),
    ]


def _vae_torch(torch, args, kwargs, cotangent):
    """A2PR.train's VAE loss as written: clamp(−4, 15), std = exp, KL = −0.5(1 + log(std²) −
    μ² − std²).mean(), recon_loss = (w·(Q > V)·(recon − a)²).mean(); autograd backward."""
    recon, a, mu, log_std, q_a, v = (torch.from_numpy(x) for x in args)
    for tensor in (recon, mu, log_std):
        tensor.requires_grad_()
    g = torch.from_numpy(np.asarray(cotangent))
    weight = kwargs.get("vae_weight", 1.0)
    low, high = kwargs.get("log_std_min", -4.0), kwargs.get("log_std_max", 15.0)

    def step():
        recon.grad = mu.grad = log_std.grad = None
        std = torch.exp(log_std.clamp(low, high))
        weight_emb = weight * (q_a > v)[:, None]
        recon_loss = (weight_emb * torch.square(recon - a)).mean()
        kl_loss = -0.5 * (1 + torch.log(std.pow(2)) - mu.pow(2) - std.pow(2)).mean()
        loss = recon_loss + 0.5 * kl_loss
        loss.backward(g)
        return loss

    return step


def _vae_bench(rng, rows, cols):
    recon, a = rng.standard_normal((rows, cols)), rng.standard_normal((rows, cols))
    mu, log_std = rng.standard_normal((rows, 2 * cols)), rng.standard_normal((rows, 2 * cols)) * 0.5
    return Sample("bench", (recon, a, mu, log_std, rng.standard_normal(rows), rng.standard_normal(rows)))


register(
    OpCases(
        "a2pr_vae_loss",
        dims={"B": (1, 8), "A": (1, 5), "Z": (1, 8)},
        random=_vae_random,
        edges=_vae_edges,
        errors=_vae_errors,
        known=_vae_known,
        notes=VAE_NOTES,
        defaults={"vae_weight": 1.0, "log_std_min": -4.0, "log_std_max": 15.0},
        bench=Bench(
            make=_vae_bench,  # latent_dim = 2·action_dim, as A2PR.__init__
            torch=_vae_torch,
            torch_label="A2PR.train's vae_loss: clamp, exp, −0.5(1 + log std² − μ² − std²).mean() "
            "weighted 0.5, (w·(Q > V)·(recon − a)²).mean(); autograd backward",
            # one expm1(2s) per latent element (the backward reuses it)
            transcendentals=lambda args, kwargs: args[3].size,
        ),
    )
)
