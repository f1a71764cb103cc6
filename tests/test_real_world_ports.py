"""The verifier against real code: what others ship must pass, a one-token mutation of it must fail.

Each entry is an implementation a user of the library already has — PyTorch's own functional
ops, geoopt's Poincaré-ball functions, peft's LoRA layer, lion-pytorch's and the official
Lion step, optax's Lion in JAX, scikit-learn's pinball loss — wrapped only as far as its
calling convention needs (geoopt's curvature is k = −c, sklearn takes one level at a time),
with its own argument names: no ``argmap``. Each is then changed by one token (an argument
swapped, an option ignored, a sign) the way a port goes wrong; that version must fail with
the verdict "fail", not "inaccurate".
"""

from __future__ import annotations

import numpy as np
import pytest

import refimpl
from refimpl_conformance import check

torch = pytest.importorskip("torch")
F = torch.nn.functional


# -- PyTorch's own functional ops ------------------------------------------------------------
def torch_layer_norm(x, gamma, beta, eps):
    return F.layer_norm(x, x.shape[-1:], gamma, beta, eps)


def torch_layer_norm_mutant(x, gamma, beta, eps):
    return F.layer_norm(x, x.shape[-1:], gamma, beta, 1e-5)  # eps -> 1e-5: the option is ignored


def kd_loss(student_logits, teacher_logits, T):
    """Hinton-style distillation with PyTorch's KL divergence (rows over every leading axis)."""
    K = student_logits.shape[-1]
    log_q = F.log_softmax(student_logits / T, dim=-1).reshape(-1, K)
    log_p = F.log_softmax(teacher_logits / T, dim=-1).reshape(-1, K)
    return F.kl_div(log_q, log_p, reduction="batchmean", log_target=True) * T * T


def kd_loss_mutant(student_logits, teacher_logits, T):
    K = student_logits.shape[-1]
    log_q = F.log_softmax(student_logits / T, dim=-1).reshape(-1, K)
    log_p = F.log_softmax(teacher_logits / T, dim=-1).reshape(-1, K)
    return F.kl_div(log_q, log_p, reduction="batchmean", log_target=True) * T  # T * T -> T


def pskd_cross_entropy(logits, soft_targets, reduction="mean"):
    return F.cross_entropy(logits, soft_targets, reduction=reduction)


def pskd_cross_entropy_mutant(logits, soft_targets, reduction="mean"):
    return F.cross_entropy(logits, soft_targets, reduction="mean")  # reduction -> "mean"


def mult_vae_log_likelihood(logits, x):
    return (x * F.log_softmax(logits, dim=-1)).sum(-1)


def mult_vae_log_likelihood_mutant(logits, x):
    return (x * F.log_softmax(logits, dim=0)).sum(-1)  # dim=-1 -> dim=0


def logq_corrected_softmax(scores, log_p, reduction="mean"):
    return F.cross_entropy(scores - log_p, torch.arange(scores.shape[0]), reduction=reduction)


def logq_corrected_softmax_mutant(scores, log_p, reduction="mean"):
    return F.cross_entropy(scores + log_p, torch.arange(scores.shape[0]), reduction=reduction)  # - -> +


def info_nce(z, z_prime, temperature, alpha):
    logits = F.normalize(z, dim=-1) @ F.normalize(z_prime, dim=-1).T / temperature
    return alpha * F.cross_entropy(logits, torch.arange(z.shape[0]))


def info_nce_mutant(z, z_prime, temperature, alpha):
    logits = F.normalize(z, dim=0) @ F.normalize(z_prime, dim=-1).T / temperature  # dim=-1 -> 0
    return alpha * F.cross_entropy(logits, torch.arange(z.shape[0]))


# -- peft's LoRA layer -----------------------------------------------------------------------------
def _peft_lora(use_rslora):
    def peft_lora_linear(x, W, A, B, bias=None, scale=1.0):
        from peft.tuners.lora import Linear, LoraConfig

        rank = A.shape[0]
        base = torch.nn.Linear(W.shape[1], W.shape[0], bias=bias is not None, dtype=W.dtype)
        config = LoraConfig(r=rank, lora_alpha=scale * rank, use_rslora=use_rslora)  # scaling α/r
        layer = Linear(base, "default", config, r=rank, lora_alpha=scale * rank)
        weights = {"base_layer.weight": W, "lora_A.default.weight": A, "lora_B.default.weight": B}
        if bias is not None:
            weights["base_layer.bias"] = bias
        return torch.func.functional_call(layer, weights, (x,))

    return peft_lora_linear


# -- Lion: lion-pytorch, the official step (google/automl), optax ------------------------------------
def _lion_pytorch(swap_betas):
    def lion_pytorch_step(params, grads, momentum, lr, beta1, beta2, weight_decay):
        from lion_pytorch import Lion

        p = torch.nn.Parameter(params.clone())
        betas = (beta2, beta1) if swap_betas else (beta1, beta2)  # the mutant swaps the betas
        optimizer = Lion([p], lr=lr, betas=betas, weight_decay=weight_decay)
        p.grad = grads.clone()
        optimizer.state[p]["exp_avg"] = momentum.clone()
        optimizer.step()
        return p.detach(), optimizer.state[p]["exp_avg"]

    return lion_pytorch_step


def _official_lion(sign):
    def official_lion_step(p, grad, exp_avg, lr, beta1, beta2, weight_decay):
        """google/automl lion_pytorch.py, one parameter: in-place PyTorch ops in its order."""
        p, exp_avg = p.clone(), exp_avg.clone()
        p.mul_(1 - lr * weight_decay)
        update = exp_avg.clone().mul_(beta1).add(grad, alpha=1 - beta1)
        p.add_(torch.sign(update), alpha=sign * lr)  # the mutant's alpha=lr for alpha=-lr
        exp_avg.mul_(beta2).add_(grad, alpha=1 - beta2)
        return p, exp_avg

    return official_lion_step


def _optax_lion(second_beta):
    def optax_lion_step(params, grads, momentum, lr, beta1, beta2, weight_decay):
        import optax

        b2 = beta2 if second_beta == "beta2" else beta1  # the mutant passes b2=beta1
        transform = optax.lion(learning_rate=lr, b1=beta1, b2=b2, weight_decay=weight_decay)
        state = transform.init(params)
        state = (state[0]._replace(mu=momentum), *state[1:])
        updates, state = transform.update(grads, state, params)
        return optax.apply_updates(params, updates), state[0].mu

    return optax_lion_step


# -- scikit-learn's pinball loss (a forward only) -----------------------------------------------------
def _sklearn_pinball(swapped):
    def sklearn_pinball_loss(y, q, tau):
        from sklearn.metrics import mean_pinball_loss

        losses = [
            mean_pinball_loss(q[:, j], y, alpha=float(tau[j]))  # the mutant swaps y_true, y_pred
            if swapped
            else mean_pinball_loss(y, q[:, j], alpha=float(tau[j]))
            for j in range(q.shape[1])
        ]
        return np.asarray(np.mean(losses), dtype=y.dtype)  # sklearn computes in float64

    return sklearn_pinball_loss


PORTS = {
    "torch layer_norm": ("layer_norm", torch_layer_norm, torch_layer_norm_mutant, {"framework": "torch"}),
    "torch kl_div distillation": ("distillation_kl", kd_loss, kd_loss_mutant, {"framework": "torch"}),
    "torch cross_entropy, soft targets": (
        "pskd_loss",
        pskd_cross_entropy,
        pskd_cross_entropy_mutant,
        {"framework": "torch"},
    ),
    "torch log_softmax likelihood": (
        "multinomial_log_likelihood",
        mult_vae_log_likelihood,
        mult_vae_log_likelihood_mutant,
        {"framework": "torch"},
    ),
    "torch cross_entropy, logQ correction": (
        "sampled_softmax_logq",
        logq_corrected_softmax,
        logq_corrected_softmax_mutant,
        {"framework": "torch"},
    ),
    "torch cross_entropy InfoNCE": ("cosine_infonce", info_nce, info_nce_mutant, {"framework": "torch"}),
    "peft LoRA Linear": ("lora_linear", _peft_lora(False), _peft_lora(True), {"framework": "torch"}),
    "lion-pytorch Lion": ("lion_step", _lion_pytorch(False), _lion_pytorch(True), {"framework": "torch"}),
    "official Lion step": ("lion_step", _official_lion(-1), _official_lion(1), {"framework": "torch"}),
    "optax lion": ("lion_step", _optax_lion("beta2"), _optax_lion("beta1"), {"framework": "jax"}),
    "sklearn mean_pinball_loss": (
        "pinball_loss",
        _sklearn_pinball(False),
        _sklearn_pinball(True),
        {"forward_only": True},
    ),
}
NEEDS = {"peft": "peft", "lion-pytorch": "lion_pytorch", "optax": "optax", "sklearn": "sklearn"}


def _requires(label):
    for word, module in NEEDS.items():
        if label.startswith(word):
            pytest.importorskip(module)


@pytest.mark.parametrize("label", list(PORTS))
def test_real_implementation_passes(label):
    _requires(label)
    op, port, _, options = PORTS[label]
    report = check(op, port, **options)
    assert report.ok, [
        (r.status, r.dtype, r.sample, r.detail[:300]) for r in report.failures + report.inaccurate
    ]
    assert not report.warnings
    ran = [r for r in report.results if r.status == "pass" and r.check == "forward"]
    assert {r.dtype for r in ran} == {"float64", "float32"}
    skipped = [r for r in report.results if r.status == "skip"]
    assert all(r.detail for r in skipped)  # every skip says why


@pytest.mark.parametrize("label", list(PORTS))
def test_one_token_mutation_fails(label):
    _requires(label)
    op, _, mutant, options = PORTS[label]
    report = check(op, mutant, **options)
    assert report.failures, f"{label}: the mutant passed"
    assert all(r.status == "fail" for r in report.failures)


# -- geoopt: the ball's functions, inside the domain geoopt computes exactly ---------------------
def _geoopt():
    return pytest.importorskip("geoopt.manifolds.stereographic.math")


def _curvature(x, c, sign=-1.0):
    return torch.tensor(sign * c, dtype=x.dtype)  # the Poincaré ball of curvature −c is geoopt's k = −c


def geoopt_ports(sign=-1.0):
    g = _geoopt()
    return {
        "mobius_add": lambda x, y, c=1.0: g.mobius_add(x, y, k=_curvature(x, c, sign)),
        "poincare_expmap": lambda x, v, c=1.0: g.expmap(x, v, k=_curvature(x, c, sign)),
        "poincare_logmap": lambda x, y, c=1.0: g.logmap(x, y, k=_curvature(x, c, sign)),
        "poincare_distance": lambda x, y, c=1.0: g.dist(x, y, k=_curvature(x, c, sign)),
        "mobius_matvec": lambda M, x, c=1.0: g.mobius_matvec(M, x, k=_curvature(x, c, sign)),
        "mobius_scalar_mul": lambda r, x, c=1.0: g.mobius_scalar_mul(
            r[..., None], x, k=_curvature(x, c, sign)
        ),
        "poincare_gyration": lambda a, b, v, c=1.0: g.gyration(a, b, v, k=_curvature(a, c, sign)),
        "poincare_parallel_transport": lambda x, y, v, c=1.0: g.parallel_transport(
            x, y, v, k=_curvature(x, c, sign)
        ),
        "poincare_expmap0": lambda v, c=1.0: g.expmap0(v, k=_curvature(v, c, sign)),
        "poincare_logmap0": lambda y, c=1.0: g.logmap0(y, k=_curvature(y, c, sign)),
    }


# geoopt clamps by design: norms below 1e-15, artanh's argument at 1 − 1e-7, tanh's at ±15, and
# a Taylor series for |k| near 0. Samples there are outside what it computes exactly; it says so.
GEOOPT_CLAMPED = {"SAME_POINT", "AT_ORIGIN", "KERNEL", "UNDERFLOW", "C_TO_ZERO", "BALL_BOUNDARY", "SATURATED"}


def geoopt_covers(sample):
    if GEOOPT_CLAMPED & set(sample.flags):
        return False
    matrices = [a for a in sample.args if isinstance(a, np.ndarray) and a.ndim >= 2]
    return all(np.all(np.linalg.norm(a, axis=-1) > 1e-6) for a in matrices)


# geoopt's artanh is ½(log(1 + x) − log(1 − x)): for a small x it loses log2(1/x) bits (relative
# error ~1e-13 in float64, ~3e-5 in float32 at x ~ 1e-3; up to 250 times the allowed error over
# 100 seeds), a right formula that is less accurate than it could be. The ops built on it get
# "inaccurate" where a norm or a distance is small, never "fail".
GEOOPT_ARTANH = {
    "poincare_logmap0",
    "poincare_logmap",
    "poincare_distance",
    "mobius_scalar_mul",
    "mobius_matvec",
}


GEOOPT_OPS = [
    "mobius_add",
    "mobius_matvec",
    "mobius_scalar_mul",
    "poincare_distance",
    "poincare_expmap",
    "poincare_expmap0",
    "poincare_gyration",
    "poincare_logmap",
    "poincare_logmap0",
    "poincare_parallel_transport",
]


@pytest.mark.parametrize("op", GEOOPT_OPS)
def test_geoopt_ball_functions_pass(op):
    report = check(op, geoopt_ports()[op], framework="torch", supports=geoopt_covers)
    assert not report.failures, [(r.dtype, r.sample, r.detail[:300]) for r in report.failures]
    assert not report.warnings
    if op in GEOOPT_ARTANH:
        assert all(r.detail.startswith("loses accuracy") for r in report.inaccurate)
    else:
        assert report.ok
    skipped = {r.sample for r in report.results if r.status == "skip"}
    assert all("supports=" in r.detail for r in report.results if r.status == "skip" and r.sample in skipped)


@pytest.mark.parametrize("op", ["mobius_add", "poincare_distance", "poincare_expmap0", "poincare_logmap0"])
def test_geoopt_with_the_sphere_sign_of_the_curvature_fails(op):
    report = check(op, geoopt_ports(sign=1.0)[op], framework="torch", supports=geoopt_covers, seeds=range(3))
    assert report.failures and all(r.status == "fail" for r in report.failures)


def test_geoopt_mobius_addition_with_swapped_operands_fails():
    g = _geoopt()

    def swapped(x, y, c=1.0):  # Möbius addition is not commutative
        return g.mobius_add(y, x, k=_curvature(x, c))

    report = check("mobius_add", swapped, framework="torch", supports=geoopt_covers, seeds=range(3))
    assert report.failures and all(r.status == "fail" for r in report.failures)


# -- declaring what a port does not differentiate --------------------------------------------------
def kd_loss_detached_teacher(student_logits, teacher_logits, T):
    return kd_loss(student_logits, teacher_logits.detach(), T)


def test_a_detached_teacher_fails_with_a_hint_unless_declared_no_grad():
    report = check("distillation_kl", kd_loss_detached_teacher, framework="torch", seeds=range(3))
    assert report.failures and all("cotangent of 'z_teacher'" in r.detail for r in report.failures)
    assert all("no_grad=['z_teacher']" in r.detail for r in report.failures)
    declared = check("distillation_kl", kd_loss_detached_teacher, framework="torch", no_grad=["z_teacher"])
    assert declared.ok and not declared.warnings
    assert all("z_teacher" not in r.detail for r in declared.results if r.check == "vjp")


def test_a_tensor_passed_to_the_reference_gets_an_input_error_that_says_what_to_do():
    x = torch.ones(2, 3)
    with pytest.raises(
        refimpl.InputError, match=r"layer_norm: argument 'x'.*\.numpy\(\).*framework=.*torch\.Tensor"
    ):
        refimpl.get("layer_norm")(x, np.ones(3), np.zeros(3))
