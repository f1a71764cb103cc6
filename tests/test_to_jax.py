"""refimpl.to_jax: every catalog op as a JAX function, differentiated by its hand-derived VJP."""

import numpy as np
import pytest

import refimpl
from refimpl_conformance import cases_for
from refimpl_conformance.frameworks import ShapeInferenceError

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")


@pytest.fixture(autouse=True, scope="module")
def float64_in_jax():
    """float64 for this module only: the setting is process-wide, and other test modules run
    in the same worker process."""
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", previous)


def _jax(value):
    if isinstance(value, np.ndarray):
        return jnp.asarray(value)
    if isinstance(value, list) and value and isinstance(value[0], np.ndarray):
        return [jnp.asarray(v) for v in value]
    return value


def _split(name, sample):
    """The sample's arguments: the op, JAX arrays (traced under jit) and the rest (static)."""
    op = refimpl.get(name)
    arguments = dict(op.signature.bind(*sample.args, **sample.kwargs).arguments)
    arrays = {n: _jax(v) for n, v in arguments.items() if _jax(v) is not v}
    static = {n: v for n, v in arguments.items() if n not in arrays}
    return op, arguments, arrays, static


def _outputs(op, outputs):
    return (outputs,) if len(op.outputs) == 1 else tuple(outputs)


def test_float64_is_on_inside_this_module_only():
    assert jax.config.jax_enable_x64  # the fixture restores the previous value after the module


#: one differentiable op per family, each with output shapes that do not depend on the values
ONE_PER_FAMILY = {
    "adapters": "lora_linear",
    "data_selection": "el2n_score",
    "layers": "layer_norm",
    "losses": "stablemax_cross_entropy",
    "merging": "learned_soup",
    "optim": "sso_surrogate",
    "other": "quantile_sort",
    "quantization_sparsity": "nm_sparse_weight",
    "regularizers": "coco",
    "reweighting": "kl_dro_weights",
    "solvers": "group_soft_threshold",
    "structure_learning": "notears_acyclicity_exp",
    "transport": "sparsity_constrained_ot_dual",
}


def test_one_op_per_family_covers_every_family():
    families = {op.family for op in refimpl.ops() if op.is_differentiable}
    assert set(ONE_PER_FAMILY) == families
    for family, name in ONE_PER_FAMILY.items():
        assert refimpl.get(name).family == family and refimpl.get(name).is_differentiable


@pytest.mark.parametrize("name", sorted(ONE_PER_FAMILY.values()))
def test_jax_vjp_under_jit_equals_the_reference_vjp(name):
    sample = cases_for(name).random_sample(0)
    op, arguments, arrays, static = _split(name, sample)
    names = [n for n in op.differentiable if n in arrays]
    others = {n: v for n, v in arrays.items() if n not in names}
    function = refimpl.to_jax(name)
    expected, pullback = refimpl.vjp(op, **arguments)
    expected = _outputs(op, expected)
    rng = np.random.default_rng(1)
    cotangents = tuple(
        rng.standard_normal(np.shape(e)) if np.asarray(e).dtype.kind == "f" else None for e in expected
    )

    @jax.jit
    def forward_backward(primals, others, cotangents):
        def of_primals(*values):
            return function(**dict(zip(names, values, strict=True)), **others, **static)

        outputs, vjp_fn = jax.vjp(of_primals, *primals)
        outs = _outputs(op, outputs)
        full = tuple(
            np.zeros(o.shape, jax.dtypes.float0) if c is None else c
            for o, c in zip(outs, cotangents, strict=True)
        )
        return outputs, vjp_fn(full[0] if len(outs) == 1 else full)

    jax_cotangents = tuple(None if c is None else jnp.asarray(c) for c in cotangents)
    outputs, grads = forward_backward([arrays[n] for n in names], others, jax_cotangents)
    for label, output, value in zip(op.outputs, _outputs(op, outputs), expected, strict=True):
        np.testing.assert_array_equal(np.asarray(output), value, err_msg=label)
    reference = pullback(cotangents[0] if len(op.outputs) == 1 else cotangents)
    by_name = dict(zip(op.differentiable, reference, strict=True))
    for input_name, grad in zip(names, grads, strict=True):
        np.testing.assert_array_equal(np.asarray(grad), by_name[input_name], err_msg=input_name)


def test_jax_grad_of_a_loss_with_integer_labels_under_jit():
    """Labels are traced arrays; their cotangent is float0 and jax.grad takes the logits'."""
    rng = np.random.default_rng(0)
    z, y = rng.standard_normal((6, 4)), rng.integers(0, 4, 6)
    loss = refimpl.to_jax("stablemax_cross_entropy")
    value, grad = jax.jit(jax.value_and_grad(loss))(jnp.asarray(z), jnp.asarray(y))
    expected, pullback = refimpl.vjp("stablemax_cross_entropy", z, y)
    assert float(value) == float(expected)
    np.testing.assert_array_equal(np.asarray(grad), pullback(np.float64(1.0))[0])


@pytest.mark.parametrize("name", [op.name for op in refimpl.ops()])
def test_to_jax_forward_equals_the_reference(name):
    op, arguments, arrays, static = _split(name, cases_for(name).random_sample(0))
    expected = _outputs(op, op(**arguments))
    got = _outputs(op, refimpl.to_jax(name)(**arrays, **static))
    for label, output, value in zip(op.outputs, got, expected, strict=True):
        assert isinstance(output, jax.Array), label
        np.testing.assert_array_equal(np.asarray(output), value, err_msg=label)


@pytest.mark.parametrize("name", [op.name for op in refimpl.ops()])
def test_to_jax_forward_under_jit_equals_the_reference_or_is_refused(name):
    """Under jit the output shapes come from probe calls; where they depend on the values the
    call is refused with ShapeInferenceError (when tracing, or when the callback runs), never
    answered with wrong shapes."""
    op, arguments, arrays, static = _split(name, cases_for(name).random_sample(0))
    expected = _outputs(op, op(**arguments))
    function = refimpl.to_jax(name)
    try:
        got = _outputs(op, jax.jit(lambda arrays: function(**arrays, **static))(arrays))
    except ShapeInferenceError:
        return
    except jax.errors.JaxRuntimeError as error:
        assert "ShapeInferenceError" in str(error) and "depends on the input values" in str(error)
        return
    for label, output, value in zip(op.outputs, got, expected, strict=True):
        np.testing.assert_array_equal(np.asarray(output), value, err_msg=label)


def test_input_error_propagates_unchanged_outside_jit():
    z = np.random.default_rng(0).standard_normal((3, 5))
    loss = refimpl.to_jax("stablemax_cross_entropy")
    for y in [np.array([0, 1, 5]), np.array([0, 1])]:  # a label out of range, a wrong shape
        with pytest.raises(refimpl.InputError) as direct:
            refimpl.get("stablemax_cross_entropy")(z, y)
        with pytest.raises(refimpl.InputError) as wrapped:
            loss(jnp.asarray(z), jnp.asarray(y))
        assert str(wrapped.value) == str(direct.value)
        with pytest.raises(refimpl.InputError) as under_grad:
            jax.grad(loss)(jnp.asarray(z), jnp.asarray(y))
        assert str(under_grad.value) == str(direct.value)


def test_a_wrong_shape_is_an_input_error_when_jit_traces():
    z, y = jnp.zeros((3, 5)), jnp.array([0, 1])
    with pytest.raises(refimpl.InputError, match="argument 'y'"):
        jax.jit(refimpl.to_jax("stablemax_cross_entropy"))(z, y)


def test_float32_stays_float32():
    rng = np.random.default_rng(0)
    x, gamma, beta = (jnp.asarray(rng.standard_normal(s), dtype=jnp.float32) for s in [(4, 8), (8,), (8,)])
    layer_norm = refimpl.to_jax("layer_norm")
    y = jax.jit(layer_norm)(x, gamma, beta)
    grad = jax.jit(jax.grad(lambda x: layer_norm(x, gamma, beta).sum()))(x)
    assert y.dtype == jnp.float32 and grad.dtype == jnp.float32
    np.testing.assert_array_equal(
        np.asarray(y), refimpl.get("layer_norm")(*map(np.asarray, (x, gamma, beta)))
    )


def test_vmap_runs_one_example_at_a_time():
    rng = np.random.default_rng(0)
    x, gamma, beta = rng.standard_normal((3, 4, 8)), rng.standard_normal(8), rng.standard_normal(8)
    layer_norm = refimpl.to_jax("layer_norm")
    batched = jax.jit(jax.vmap(layer_norm, in_axes=(0, None, None)))(jnp.asarray(x), gamma, beta)
    np.testing.assert_array_equal(np.asarray(batched), refimpl.get("layer_norm")(x, gamma, beta))


def test_numba_backend_gives_the_references_values():
    sample = cases_for("layer_norm").random_sample(0)
    op, arguments, arrays, static = _split("layer_norm", sample)
    got = jax.jit(lambda a: refimpl.to_jax("layer_norm", backend="numba")(**a, **static))(arrays)
    np.testing.assert_allclose(np.asarray(got), op(**arguments), rtol=1e-12, atol=1e-12)
