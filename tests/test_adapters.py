"""Checking a user's own PyTorch / NumPy implementation through the adapters.

Independent PyTorch implementations of the foundation's routines must pass; a deliberately
wrong one per routine must be caught, and the report must say which check, which sample
and by how much.
"""

import numpy as np
import pytest
import torch

import refimpl_conformance as rc
from refimpl_conformance.adapters import assert_conforms, check


# -- independent PyTorch implementations -------------------------------------------------
def torch_stablemax_cross_entropy(z, y, reduction="mean", compute_in_float64=False):
    work = z.double() if compute_in_float64 else z
    # a select, not clamp(min=0) + 1/(1 - clamp(max=0)): see the kink test below
    s = torch.where(work >= 0, work + 1, 1 / (1 - torch.clamp(work, max=0)))
    log_p = torch.log(s) - torch.log(s.sum(-1, keepdim=True))
    per_row = -log_p.gather(1, y[:, None])[:, 0]
    loss = {"mean": per_row.mean, "sum": per_row.sum}.get(reduction, lambda: per_row)()
    return loss.to(z.dtype)


def torch_layer_norm(x, gamma, beta, eps=1e-5):
    mu = x.mean(-1, keepdim=True)
    variance = ((x - mu) ** 2).mean(-1, keepdim=True)
    return gamma * (x - mu) / torch.sqrt(variance + eps) + beta


def torch_lion_step(params, grads, momentum, lr, beta1, beta2, weight_decay):
    c = beta1 * momentum + (1 - beta1) * grads
    new = params * (1 - lr * weight_decay)
    new = new - lr * torch.sign(c)
    return new, beta2 * momentum + (1 - beta2) * grads


def torch_mobius_add(x, y, c=1.0):
    xy = (x * y).sum(-1, keepdim=True)
    x2 = (x * x).sum(-1, keepdim=True)
    y2 = (y * y).sum(-1, keepdim=True)
    numerator = (1 + 2 * c * xy + c * y2) * x + (1 - c * x2) * y
    return numerator / (1 + 2 * c * xy + c**2 * x2 * y2)


@pytest.mark.parametrize(
    ("op", "fn"),
    [
        ("stablemax_cross_entropy", torch_stablemax_cross_entropy),
        ("layer_norm", torch_layer_norm),
        ("lion_step", torch_lion_step),
    ],
)
def test_correct_torch_implementations_conform(op, fn):
    report = assert_conforms(op, fn, framework="torch")
    assert report.ok and any(r.check == "forward" and r.status == "pass" for r in report.results)


def test_textbook_mobius_addition_is_inaccurate_near_the_boundary_not_wrong():
    # the textbook formula is right, but its denominator cancels for nearly antipodal points
    # near the boundary: its own verdict, with the relative error and where
    report = check("mobius_add", torch_mobius_add, framework="torch")
    assert not report.failures and not report.ok
    assert report.inaccurate and all("BALL_BOUNDARY" in r.detail for r in report.inaccurate)
    assert {r.dtype for r in report.inaccurate} == {"float64", "float32"}
    assert all(
        r.detail.startswith("loses accuracy in") and "relative error" in r.detail for r in report.inaccurate
    )
    assert all(
        "BALL_BOUNDARY" in s.flags
        for s in rc.cases_for("mobius_add").edges()
        if s.name in {r.sample for r in report.inaccurate}
    )


def test_textbook_mobius_addition_conforms_where_it_declares_support():
    report = check(
        "mobius_add",
        torch_mobius_add,
        framework="torch",
        supports=lambda sample: "BALL_BOUNDARY" not in sample.flags,
    )
    assert report.ok
    assert any(r.status == "skip" for r in report.results)


# -- deliberately wrong implementations ----------------------------------------------------
class _WrongSignLayerNorm(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, gamma, beta, eps):
        mu = x.mean(-1, keepdim=True)
        rstd = 1 / torch.sqrt(((x - mu) ** 2).mean(-1, keepdim=True) + eps)
        x_hat = (x - mu) * rstd
        ctx.save_for_backward(x_hat, rstd, gamma)
        return gamma * x_hat + beta

    @staticmethod
    def backward(ctx, g):
        x_hat, rstd, gamma = ctx.saved_tensors
        g_hat = g * gamma
        g_x = rstd * (g_hat - g_hat.mean(-1, keepdim=True) - x_hat * (g_hat * x_hat).mean(-1, keepdim=True))
        rows, rows_hat = g.reshape(-1, g.shape[-1]), x_hat.reshape(-1, g.shape[-1])
        return -g_x, (rows * rows_hat).sum(0), rows.sum(0), None  # the sign of g_x is wrong


def test_wrong_vjp_sign_is_caught_with_its_check_and_sample():
    report = check(
        "layer_norm",
        lambda x, gamma, beta, eps: _WrongSignLayerNorm.apply(x, gamma, beta, eps),
        framework="torch",
    )
    failures = report.failures
    assert failures and {f.check for f in failures} == {"vjp"}
    assert all("cotangent of 'x'" in f.detail for f in failures)
    assert max(f.max_abs for f in failures) > 1.0  # the report says by how much


def test_eps_outside_the_square_root_is_caught():
    def eps_misplaced(x, gamma, beta, eps=1e-5):
        mu = x.mean(-1, keepdim=True)
        return gamma * (x - mu) / (torch.sqrt(((x - mu) ** 2).mean(-1, keepdim=True)) + eps) + beta

    failures = check("layer_norm", eps_misplaced, framework="torch").failures
    assert "constant row" in {f.sample for f in failures}


def test_softmax_without_max_subtraction_is_caught():
    def weights_without_shift(losses, strategy, r, delta=1.0):
        spread = torch.clamp(losses.max() - losses.min(), min=1e-6)
        normalized = delta * ((losses - losses.min()) - (losses.max() - losses)) / spread
        f = {
            "linupper": torch.clamp(normalized + delta, max=delta),
            "quadratic": 1 - normalized**2 / delta**2,
            "extremes": normalized.abs(),
            "identity": normalized,
            "uniform": torch.zeros_like(normalized),
        }[strategy]
        e = torch.exp(f / r)  # no max-subtraction: overflows for small r
        return e / e.sum()

    failures = check("loss_based_sample_weights", weights_without_shift, framework="torch").failures
    assert failures and all(f.check == "forward" for f in failures)
    assert any("MISSING" in f.sample or "1e-3" in f.sample or "r =" in f.sample for f in failures)


def test_two_branch_stablemax_nan_in_float32_is_caught():
    def official_style(z, y, reduction="mean", compute_in_float64=False):
        s = torch.where(z >= 0, z + 1, 1 / (1 - z + 1e-30))  # the unused branch overflows at z = 1
        log_p = torch.log(s) - torch.log(s.sum(-1, keepdim=True))
        per_row = -log_p.gather(1, y[:, None])[:, 0]
        return {"mean": per_row.mean, "sum": per_row.sum}.get(reduction, lambda: per_row)()

    failures = check(
        "stablemax_cross_entropy", official_style, framework="torch", dtypes=("float32",)
    ).failures
    assert any(f.sample == "float32 logit exactly 1.0" and f.check == "vjp" for f in failures)


def test_clamp_based_stablemax_double_counts_the_kink():
    # max(z, 0) + 1/(1 - min(z, 0)) written with two clamps: autograd passes the gradient
    # through both clamps at z = 0 exactly, so ds/dz = 2 there instead of 1
    def clamped(z, y, reduction="mean", compute_in_float64=False):
        s = torch.clamp(z, min=0) + 1 / (1 - torch.clamp(z, max=0))
        log_p = torch.log(s) - torch.log(s.sum(-1, keepdim=True))
        per_row = -log_p.gather(1, y[:, None])[:, 0]
        return {"mean": per_row.mean, "sum": per_row.sum}.get(reduction, lambda: per_row)()

    failures = check("stablemax_cross_entropy", clamped, framework="torch").failures
    assert "kink at 0" in {f.sample for f in failures}
    assert {f.check for f in failures} == {"vjp"}


def test_silent_promotion_to_float64_is_reported():
    failures = check(
        "layer_norm",
        lambda x, gamma, beta, eps: torch_layer_norm(x.double(), gamma.double(), beta.double(), eps),
        framework="torch",
        dtypes=("float32",),
    ).failures
    assert failures and all("dtype float64, expected float32" in f.detail for f in failures)


# -- NumPy functions, argmap, declared support ---------------------------------------------
def test_numpy_function_with_a_hand_written_vjp_and_renamed_arguments():
    def my_stablemax(logits):
        s = np.maximum(logits, 0) + 1 / (1 - np.minimum(logits, 0))
        return s / s.sum(-1, keepdims=True)

    def my_stablemax_vjp(g, logits):
        p = my_stablemax(logits)
        return (p * (g - (g * p).sum(-1, keepdims=True)) / (1 + np.abs(logits)),)

    report = assert_conforms("stablemax", my_stablemax, vjp=my_stablemax_vjp, argmap={"z": "logits"})
    assert report.ok


def test_a_numpy_function_without_vjp_is_reported_not_passed():
    report = check("stablemax", lambda z: rc.cases_for("stablemax") and z, framework="numpy")
    assert report.failures and all("pass vjp=" in f.detail or f.check == "forward" for f in report.failures)


def test_unsupported_samples_are_skipped_not_passed():
    report = check(
        "stablemax_cross_entropy",
        torch_stablemax_cross_entropy,
        framework="torch",
        supports=lambda s: s.kwargs.get("reduction", "mean") == "mean",
    )
    skipped = [r for r in report.results if r.status == "skip"]
    assert skipped and all("not supported" in r.detail for r in skipped)
    assert report.ok


def test_assert_conforms_lists_check_sample_and_error_size():
    with pytest.raises(AssertionError, match=r"vjp \[float64\] sample .*max abs"):
        assert_conforms(
            "layer_norm",
            lambda x, gamma, beta, eps: _WrongSignLayerNorm.apply(x, gamma, beta, eps),
            framework="torch",
        )


# -- the README's example, the command line and the pytest fixture ------------------------
def test_readme_example_runs_as_written():
    from pathlib import Path

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    block = readme.split("<!-- readme-example -->")[1].split("```python")[1].split("```")[0]
    assert "assert_conforms" in block
    exec(compile(block, "README.md", "exec"), {})


def test_cli_checks_an_implementation_by_import_path(tmp_path, monkeypatch, capsys):
    from refimpl.cli import main

    (tmp_path / "my_norms.py").write_text(
        "import torch\n"
        "def good(x, gamma, beta, eps):\n"
        "    mu = x.mean(-1, keepdim=True)\n"
        "    return gamma * (x - mu) / torch.sqrt(((x - mu) ** 2).mean(-1, keepdim=True) + eps) + beta\n"
        "def bad(x, gamma, beta, eps):\n"
        "    mu = x.mean(-1, keepdim=True)\n"
        "    return gamma * (x - mu) / (torch.sqrt(((x - mu) ** 2).mean(-1, keepdim=True)) + eps) + beta\n"
        "layer_norm = good\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["check", "--impl", "my_norms:good", "--op", "layer_norm", "--framework", "torch"]) == 0
    assert main(["check", "--impl", "my_norms", "--framework", "torch"]) == 0  # functions named after ops
    capsys.readouterr()
    assert main(["check", "--impl", "my_norms:bad", "--op", "layer_norm", "--framework", "torch"]) == 1
    out = capsys.readouterr().out
    assert "FAIL forward impl:torch:my_norms:bad layer_norm" in out
    assert "repro: refimpl check --op layer_norm --impl my_norms:bad --framework torch" in out


def test_pytest_fixture_asserts_conformance(refimpl_check):
    report = refimpl_check("layer_norm", torch_layer_norm, framework="torch", dtypes=("float64",))
    assert report.ok


# -- the other foundation routines: a correct and a wrong PyTorch port each ------------------
def torch_expmap0(v, c=1.0):
    u = c**0.5 * torch.linalg.vector_norm(v, dim=-1, keepdim=True)
    safe = torch.where(u > 1e-6, u, torch.ones_like(u))
    factor = torch.where(u > 1e-6, torch.tanh(safe) / safe, 1 - u**2 / 3)  # series at the origin
    return factor * v


def test_poincare_expmap0_in_torch_conforms_and_the_naive_one_fails_at_the_origin():
    assert check("poincare_expmap0", torch_expmap0, framework="torch").ok

    def naive(v, c=1.0):  # tanh(u)·v/u: 0/0 at v = 0
        u = c**0.5 * torch.linalg.vector_norm(v, dim=-1, keepdim=True)
        return torch.tanh(u) * v / u

    failures = check("poincare_expmap0", naive, framework="torch").failures
    assert {(f.sample, f.check) for f in failures} >= {
        ("v = 0 exactly (rows 0 and 2)", "forward"),
        ("v = 0 exactly (rows 0 and 2)", "vjp"),
    }


def torch_lora_linear(x, W, A, B, bias=None, scale=1.0):
    y = x @ W.T + scale * (x @ A.T) @ B.T
    return y if bias is None else y + bias


def test_lora_linear_in_torch_conforms_and_a_transposed_update_fails():
    assert check("lora_linear", torch_lora_linear, framework="torch").ok

    def scale_applied_twice(x, W, A, B, bias=None, scale=1.0):
        return torch_lora_linear(x, W, A, B, bias, scale * scale)

    failures = check("lora_linear", scale_applied_twice, framework="torch").failures
    assert failures and {"forward", "vjp"} <= {f.check for f in failures}


def torch_pissa_init(W, r, scale=1.0):
    U, S, Vh = torch.linalg.svd(W, full_matrices=False)
    root = torch.sqrt(S[:r] / scale)
    A, B = root[:, None] * Vh[:r], U[:, :r] * root
    return A, B, W - scale * B @ A


def test_pissa_init_in_torch_conforms_up_to_singular_vector_signs():
    # torch's SVD picks its own signs: the suite compares s·B A and W_res, not the factors
    assert check("pissa_init", torch_pissa_init, framework="torch").ok

    def residual_without_scale(W, r, scale=1.0):
        A, B, _ = torch_pissa_init(W, r, scale)
        return A, B, W - B @ A

    failures = check("pissa_init", residual_without_scale, framework="torch").failures
    assert failures and all(f.check == "forward" for f in failures)


def test_lion_with_the_algebraic_decay_form_rounds_differently_and_passes():
    # optax's form θ − η(sign(c) + λθ): one rounding away from the official order, not a bug
    def algebraic(params, grads, momentum, lr, beta1, beta2, weight_decay):
        c = beta1 * momentum + (1 - beta1) * grads
        return params - lr * (torch.sign(c) + weight_decay * params), beta2 * momentum + (1 - beta2) * grads

    assert assert_conforms("lion_step", algebraic, framework="torch").ok


# -- natural signatures ------------------------------------------------------------------------
def kd_loss(student_logits, teacher_logits, T):
    K = student_logits.shape[-1]
    log_q = torch.log_softmax(student_logits / T, dim=-1).reshape(-1, K)
    log_p = torch.log_softmax(teacher_logits / T, dim=-1).reshape(-1, K)
    return (log_p.exp() * (log_p - log_q)).sum(-1).mean() * T * T


def quantile_loss(target, preds, quantiles):
    diff = target[..., None] - preds
    return torch.maximum(quantiles * diff, (quantiles - 1) * diff).mean()


def lora_forward(x, weight, lora_A, lora_B, bias, scaling):
    y = x @ weight.T + scaling * (x @ lora_A.T) @ lora_B.T
    return y if bias is None else y + bias


def test_ports_with_their_own_argument_names_bind_without_argmap():
    # op order: distillation_kl(z_student, z_teacher, *, temperature, ...), pinball_loss(y, q, tau),
    # lora_linear(x, W, A, B, bias=None, *, scale): arrays and required arguments go by position
    for op, fn in [
        ("distillation_kl", kd_loss),
        ("pinball_loss", quantile_loss),
        ("lora_linear", lora_forward),
    ]:
        report = check(op, fn, framework="torch")
        assert report.ok and not report.warnings, (op, [r.detail for r in report.failures][:2])


def test_binding_is_by_name_first_then_by_position():
    binding = rc.Binding(refimpl_get("lora_linear"), lora_forward, None)
    assert binding.targets == {
        "x": "x",
        "W": "weight",
        "A": "lora_A",
        "B": "lora_B",
        "bias": "bias",
        "scale": "scaling",
    }
    assert binding.how["x"] == "name" and binding.how["W"] == "position"


def test_options_the_function_lacks_are_passed_only_at_their_defaults_and_skipped_otherwise():
    report = check("distillation_kl", kd_loss, framework="torch")
    skipped = [r for r in report.results if r.status == "skip"]
    reasons = {r.detail.split(";")[0] for r in skipped}
    assert {"needs scale='none'", "needs form='cross_entropy'", "needs reduction='sum'"} <= reasons
    assert all("kd_loss takes no" in r.detail for r in skipped)
    # every sample that ran used the defaults the function implicitly has
    ran = {r.sample for r in report.results if r.status == "pass"}
    cases = rc.cases_for("distillation_kl")
    for sample in [cases.random_sample(seed) for seed in range(60)] + list(cases.edges()):
        if sample.name in ran:
            assert sample.kwargs.get("scale", "T2") == "T2" and sample.kwargs.get("form", "kl") == "kl"


def test_coverage_draws_until_five_supported_random_samples_per_dtype():
    # the default configuration is a minority of distillation_kl's random draws
    report = check(
        "distillation_kl",
        kd_loss,
        framework="torch",
        supports=lambda s: s.kwargs.get("reduction", "mean") == "mean",
    )
    for dtype in ("float64", "float32"):
        ran = {
            r.sample
            for r in report.results
            if r.dtype == dtype and r.status == "pass" and "seed=" in r.sample
        }
        assert len(ran) >= 5
    assert not report.warnings


def test_thin_coverage_is_a_warning_in_the_report_and_a_failure_in_assert_conforms():
    report = check(
        "pinball_loss",
        quantile_loss,
        framework="torch",
        supports=lambda s: s.kwargs.get("reduction", "mean") == "mean" and s.args[1].shape[1] == 7,
    )
    assert report.warnings and "thin coverage of pinball_loss" in report.warnings[0]
    assert "200 drawn" in report.warnings[0] and "supports=" in report.warnings[0]
    with pytest.raises(AssertionError, match="thin coverage"):
        assert_conforms(
            "pinball_loss",
            quantile_loss,
            framework="torch",
            supports=lambda s: s.args[1].shape[1] == 7,
        )


def test_a_signature_that_cannot_be_bound_fails_once_with_both_signatures_and_an_argmap():
    def kd_two_args(student_logits, teacher_logits):
        return kd_loss(student_logits, teacher_logits, 2.0)

    report = check("distillation_kl", kd_two_args, framework="torch")
    assert len(report.results) == 1 and report.results[0].check == "signature"
    detail = report.results[0].detail
    assert "kd_two_args(student_logits, teacher_logits)" in detail
    assert "distillation_kl(z_student, z_teacher, *, temperature" in detail
    assert "'temperature' has no parameter to go to" in detail
    assert (
        "argmap={'z_student': 'student_logits', 'z_teacher': 'teacher_logits', 'temperature': None}" in detail
    )
    with pytest.raises(AssertionError, match="signature"):
        assert_conforms("distillation_kl", kd_two_args, framework="torch")


def test_unknown_argmap_keys_and_targets_are_errors():
    report = check("layer_norm", torch_layer_norm, framework="torch", argmap={"epsilon": "eps"})
    assert (
        report.failures
        and "argmap names 'epsilon', which layer_norm does not take" in report.failures[0].detail
    )
    report = check("layer_norm", torch_layer_norm, framework="torch", argmap={"eps": "epsilon"})
    assert report.failures and "has no parameter 'epsilon'" in report.failures[0].detail


def test_argmap_still_renames_and_can_drop_an_option():
    def norm(inputs, weight, bias, epsilon=1e-5):
        return torch_layer_norm(inputs, weight, bias, epsilon)

    report = assert_conforms("layer_norm", norm, framework="torch", argmap={"x": "inputs", "eps": "epsilon"})
    assert report.ok
    dropped = check(
        "layer_norm",
        lambda x, gamma, beta: torch_layer_norm(x, gamma, beta, 1e-5),
        framework="torch",
        argmap={"eps": None},
    )
    assert not dropped.failures and any("needs eps=" in r.detail for r in dropped.skipped)


def test_a_forward_only_function_is_checked_on_its_outputs():
    def forward(z):
        s = np.maximum(z, 0) + 1 / (1 - np.minimum(z, 0))
        return s / s.sum(-1, keepdims=True)

    report = check("stablemax", forward, forward_only=True)
    assert report.ok
    assert all(
        r.status == "skip" and r.detail == "forward only (declared)"
        for r in report.results
        if r.check == "vjp"
    )


def refimpl_get(name):
    import refimpl

    return refimpl.get(name)
