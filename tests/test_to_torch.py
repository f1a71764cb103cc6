"""refimpl.to_torch: every catalog op on torch tensors, differentiated by its hand-derived VJP."""

import json
import subprocess
import sys

import numpy as np
import pytest

import refimpl
from refimpl_conformance import cases_for

torch = pytest.importorskip("torch")

DIFFERENTIABLE = [op.name for op in refimpl.ops() if op.is_differentiable]


def _fd_sample(name):
    """A float64 sample where finite differences are meaningful (not at a kink), or None."""
    cases = cases_for(name)
    for sample in [cases.random_sample(seed) for seed in range(10)] + list(cases.edges()):
        if sample.fd and "float64" in sample.dtypes:
            return sample
    return None


def _tensor(value, requires_grad=False):
    """NumPy arrays (also inside a list) as fresh tensors; anything else unchanged."""
    if isinstance(value, np.ndarray):
        return torch.tensor(value).requires_grad_(requires_grad)
    if isinstance(value, list) and value and isinstance(value[0], np.ndarray):
        return [torch.tensor(v) for v in value]
    return value


def _arguments(name, sample):
    op = refimpl.get(name)
    bound = op.signature.bind(*sample.args, **sample.kwargs)
    return op, dict(bound.arguments)


def _outputs(op, outputs):
    return (outputs,) if len(op.outputs) == 1 else tuple(outputs)


@pytest.mark.parametrize("name", DIFFERENTIABLE)
def test_to_torch_gradients_are_the_ops_vjp(name):
    """Forward and backward through torch.autograd give exactly refimpl.vjp's outputs and
    cotangents (same code), for a random cotangent on every float output."""
    op, arguments = _arguments(name, cases_for(name).random_sample(0))
    grad_names = [n for n in op.differentiable if isinstance(arguments[n], np.ndarray)]
    given = {n: _tensor(v, requires_grad=n in grad_names) for n, v in arguments.items()}
    outputs = _outputs(op, refimpl.to_torch(name)(**given))
    expected, pullback = refimpl.vjp(op, **arguments)
    expected = _outputs(op, expected)
    rng = np.random.default_rng(1)
    cotangents = [rng.standard_normal(np.shape(e)).astype(np.asarray(e).dtype) for e in expected]
    pairs = [(o, c) for o, c in zip(outputs, cotangents, strict=True) if o.requires_grad]
    assert pairs, "no output of a differentiable op requires grad"
    grads = torch.autograd.grad(
        [o for o, _ in pairs], [given[n] for n in grad_names], [torch.from_numpy(c) for _, c in pairs]
    )
    float_cotangents = [c if o.requires_grad else None for o, c in zip(outputs, cotangents, strict=True)]
    reference = dict(
        zip(
            op.differentiable,
            pullback(float_cotangents[0] if len(op.outputs) == 1 else tuple(float_cotangents)),
        )
    )
    for output, value in zip(outputs, expected, strict=True):
        np.testing.assert_array_equal(output.detach().numpy(), value)
    for input_name, grad in zip(grad_names, grads, strict=True):
        np.testing.assert_array_equal(grad.numpy(), reference[input_name], err_msg=input_name)


GRADCHECKED = [
    name for name in DIFFERENTIABLE if not refimpl.get(name).custom_vjp and _fd_sample(name) is not None
]


@pytest.mark.parametrize("name", GRADCHECKED)
def test_to_torch_passes_gradcheck(name):
    """torch.autograd.gradcheck (fast mode, float64) with the sample's own finite-difference
    step and tolerance; ops whose backward is by design not the derivative (custom_vjp) and
    ops with no sample away from a kink are covered by the exact comparison above."""
    sample = _fd_sample(name)
    op, arguments = _arguments(name, sample)
    names = [n for n in op.differentiable if isinstance(arguments[n], np.ndarray) and arguments[n].size]
    inputs = tuple(torch.tensor(arguments[n], dtype=torch.float64, requires_grad=True) for n in names)
    others = {n: _tensor(v) for n, v in arguments.items() if n not in names}
    function = refimpl.to_torch(name)

    def float_outputs(*values):
        outputs = _outputs(op, function(**others, **dict(zip(names, values, strict=True))))
        return tuple(o for o in outputs if o.is_floating_point())

    assert torch.autograd.gradcheck(
        float_outputs, inputs, eps=sample.fd_step, atol=1e-8, rtol=sample.fd_rtol, fast_mode=True
    )


@pytest.mark.parametrize("name", [op.name for op in refimpl.ops()])
def test_to_torch_forward_equals_the_reference(name):
    op, arguments = _arguments(name, cases_for(name).random_sample(0))
    expected = _outputs(op, op(**arguments))
    got = _outputs(op, refimpl.to_torch(name)(**{n: _tensor(v) for n, v in arguments.items()}))
    for label, output, value in zip(op.outputs, got, expected, strict=True):
        assert isinstance(output, torch.Tensor), label
        np.testing.assert_array_equal(output.numpy(), value, err_msg=label)


def _stablemax_cross_entropy(z, y):
    """StableMax cross-entropy in plain torch ops (autograd differentiates it):
    s(x) = x + 1 for x >= 0, 1/(1 - x) for x < 0; p = s(z)/Σ s(z); loss = mean -log p_y."""
    s = torch.where(z >= 0, z + 1, 1 / (1 - torch.clamp(z, max=0)))
    p = s / s.sum(dim=1, keepdim=True)
    return -torch.log(p[torch.arange(z.shape[0]), y]).mean()


def test_training_loop_with_to_torch_stablemax_matches_autograd_stablemax():
    """A two-layer MLP (20 -> 32 -> 5, tanh) trained by SGD (lr 0.1, 20 steps, float64): the
    losses and every parameter agree with the same loop on an autograd StableMax, step by step."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(64, 20, generator=generator, dtype=torch.float64)
    y = torch.randint(0, 5, (64,), generator=generator)
    initial = [
        torch.randn(20, 32, generator=generator, dtype=torch.float64) / 20**0.5,
        torch.zeros(32, dtype=torch.float64),
        torch.randn(32, 5, generator=generator, dtype=torch.float64) / 32**0.5,
        torch.zeros(5, dtype=torch.float64),
    ]
    refimpl_loss = refimpl.to_torch("stablemax_cross_entropy")
    runs = {}
    for label, loss_fn in [("refimpl", refimpl_loss), ("autograd", _stablemax_cross_entropy)]:
        params = [p.clone().requires_grad_() for p in initial]
        optimizer = torch.optim.SGD(params, lr=0.1)
        history = []
        for _ in range(20):
            optimizer.zero_grad()
            w1, b1, w2, b2 = params
            loss = loss_fn(torch.tanh(x @ w1 + b1) @ w2 + b2, y)
            loss.backward()
            optimizer.step()
            history.append((loss.item(), [p.detach().clone() for p in params]))
        runs[label] = history
    assert runs["refimpl"][-1][0] < runs["refimpl"][0][0] - 0.05  # it trains
    for step, ((loss, params), (loss_autograd, params_autograd)) in enumerate(
        zip(runs["refimpl"], runs["autograd"], strict=True)
    ):
        assert loss == pytest.approx(loss_autograd, rel=1e-12, abs=1e-14), step
        for p, q in zip(params, params_autograd, strict=True):
            np.testing.assert_allclose(p.numpy(), q.numpy(), rtol=1e-12, atol=1e-14, err_msg=f"step {step}")


@pytest.mark.parametrize(
    "y",
    [np.array([0, 1, 5]), np.array([0, 1])],
    ids=["label out of range", "wrong shape"],
)
def test_input_error_propagates_with_the_ops_message(y):
    z = np.random.default_rng(0).standard_normal((3, 5))
    with pytest.raises(refimpl.InputError) as direct:
        refimpl.get("stablemax_cross_entropy")(z, y)
    with pytest.raises(refimpl.InputError) as wrapped:
        refimpl.to_torch("stablemax_cross_entropy")(torch.tensor(z, requires_grad=True), torch.tensor(y))
    assert str(wrapped.value) == str(direct.value)


def test_to_torch_keeps_float32():
    rng = np.random.default_rng(0)
    x, gamma, beta = (torch.tensor(rng.standard_normal(s), dtype=torch.float32) for s in [(4, 8), (8,), (8,)])
    x.requires_grad_()
    y = refimpl.to_torch("layer_norm")(x, gamma, beta, eps=1e-5)
    y.sum().backward()
    assert y.dtype == torch.float32 and x.grad.dtype == torch.float32
    np.testing.assert_array_equal(
        y.detach().numpy(), refimpl.get("layer_norm")(x.detach().numpy(), gamma.numpy(), beta.numpy())
    )


def test_non_contiguous_input_gives_the_same_values_and_gradients():
    rng = np.random.default_rng(0)
    base = torch.tensor(rng.standard_normal((8, 6)))
    gamma, beta = torch.tensor(rng.standard_normal(8)), torch.tensor(rng.standard_normal(8))
    layer_norm = refimpl.to_torch("layer_norm")
    results = []
    for x in [base.t(), base.t().contiguous()]:  # a transpose is not contiguous
        x = x.detach().requires_grad_()
        y = layer_norm(x, gamma, beta)
        (y * torch.arange(8.0, dtype=torch.float64)).sum().backward()
        results.append((y.detach().numpy(), x.grad.numpy()))
    assert not base.t().is_contiguous()
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])


def test_integer_outputs_and_optimizer_steps_are_plain_functions():
    sample = cases_for("bin_uniform_sampling").random_sample(0)
    op, arguments = _arguments("bin_uniform_sampling", sample)
    indices = refimpl.to_torch(op)(**{n: _tensor(v) for n, v in arguments.items()})
    assert indices.dtype == torch.int64 and indices.grad_fn is None
    np.testing.assert_array_equal(indices.numpy(), op(**arguments))

    rng = np.random.default_rng(0)
    params, grads, momentum = (rng.standard_normal(5) for _ in range(3))
    tensors = [torch.tensor(a, requires_grad=True) for a in (params, grads, momentum)]
    new_params, new_momentum = refimpl.to_torch("lion_step")(*tensors, lr=0.1)
    assert new_params.grad_fn is None and not new_params.requires_grad
    expected = refimpl.get("lion_step")(params, grads, momentum, lr=0.1)
    np.testing.assert_array_equal(new_params.numpy(), expected[0])
    np.testing.assert_array_equal(new_momentum.numpy(), expected[1])


def test_integer_outputs_of_a_differentiable_op_are_not_differentiable():
    op, arguments = _arguments("cgs_fixed_point", cases_for("cgs_fixed_point").random_sample(0))
    given = {n: _tensor(v, requires_grad=n in op.differentiable) for n, v in arguments.items()}
    outputs = refimpl.to_torch(op)(**given)
    by_name = dict(zip(op.outputs, outputs, strict=True))
    assert not by_name["iterations"].requires_grad and not by_name["converged"].requires_grad
    assert outputs[0].requires_grad
    outputs[0].sum().backward()  # the other outputs' gradients are zero
    _, pullback = refimpl.vjp(op, **arguments)
    expected = pullback((np.ones_like(outputs[0].detach().numpy()),) + (None,) * (len(outputs) - 1))
    for input_name, grad in zip(op.differentiable, expected, strict=True):
        np.testing.assert_array_equal(given[input_name].grad.numpy(), grad)


def test_an_input_modified_in_place_before_backward_is_refused():
    z = torch.randn(3, 5, dtype=torch.float64, requires_grad=True)
    logits = z * 1
    loss = refimpl.to_torch("stablemax_cross_entropy")(logits, torch.tensor([0, 1, 2]))
    logits.add_(1.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


def test_numba_backend_conforms_through_to_torch():
    from refimpl_conformance import check

    report = check(
        "layer_norm",
        refimpl.to_torch("layer_norm", backend="numba"),
        framework="torch",
        seeds=(0, 1),
        edges=False,
    )
    assert report.ok, [(f.sample, f.detail) for f in report.failures][:3]
    assert {r.check for r in report.results} >= {"forward"} and len(report.results) >= 4


def test_a_backend_without_the_op_is_refused_when_wrapping():
    missing = next(op.name for op in refimpl.ops() if not refimpl.backend("numba").supports(op))
    with pytest.raises(refimpl.UnsupportedOpError, match="numba"):
        refimpl.to_torch(missing, backend="numba")


def test_importing_refimpl_imports_neither_torch_nor_jax():
    code = "import sys, refimpl; refimpl.to_torch; print('torch' in sys.modules, 'jax' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "False"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU and a CUDA build of torch")
def test_cuda_tensors_run_the_cupy_backend_on_the_conformance_samples():
    """On a GPU: every op the CuPy backend implements, through to_torch on CUDA tensors (the
    backend is picked from the tensors' device), checked by the conformance suite."""
    from refimpl_conformance import check

    cupy_backend = refimpl.backend("cupy")
    failed = {}
    for name in sorted(cupy_backend.ops):
        report = check(
            name, refimpl.to_torch(name), framework="torch", device="cuda", seeds=(0,), edges=False
        )
        if not report.ok:
            failed[name] = [(f.sample, f.detail) for f in report.failures][:1]
    assert not failed, failed


def test_bench_frameworks_reports_the_per_call_overhead(tmp_path, capsys):
    from refimpl.cli import main

    path = tmp_path / "frameworks.json"
    assert main(["bench", "--frameworks", "--shape", "16x8", "--repeat", "2", "--json", str(path)]) == 0
    assert "the wrapped op against refimpl.vjp" in capsys.readouterr().out
    rows = json.loads(path.read_text())
    assert {(r["framework"], r["shape"]) for r in rows} == {
        ("torch", "8x16"),
        ("jax", "8x16"),
        ("torch", "16x8"),
        ("jax", "16x8"),
    }
    assert all(r["median_s"] > 0 and r["numpy_s"] > 0 for r in rows)
