"""Merging ops called with whole models (state dicts): equal to the per-tensor calls, names and
shapes checked, integer buffers copied untouched from the first model, a shared coefficient's
gradient summed over the tensors, and a greedy soup whose oracle sees state dicts."""

import numpy as np
import pytest

import refimpl
import refimpl_cupy
from refimpl.merging import atlas_composition, greedy_soup, interpolate_params, learned_soup, uniform_soup

SHAPES = {"encoder.weight": (4, 3), "encoder.bias": (4,), "head.weight": (2, 4), "scale": ()}
BACKENDS = ["numpy", "numba", refimpl_cupy.host_backend()]


def _model(rng, dtype=np.float64, steps=7):
    model = {name: rng.standard_normal(shape).astype(dtype) for name, shape in SHAPES.items()}
    model["bn.num_batches_tracked"] = np.array(steps, dtype=np.int64)  # an integer buffer
    return model


def _models(seed, count, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return [_model(rng, dtype, steps=10 + k) for k in range(count)]


def _stack(models, name):
    return np.stack([m[name] for m in models], axis=-1)


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b if isinstance(b, str) else b.name)
def test_whole_model_calls_equal_the_per_tensor_calls(backend):
    models = _models(0, 3)
    theta0 = _model(np.random.default_rng(1), steps=99)
    alpha = np.array([0.3, -0.2, 1.0])
    per_tensor_alpha = {name: np.array([0.1 * i, 0.0, -0.1 * i]) for i, name in enumerate(SHAPES)}
    lam = np.array([0.5, -0.25, 0.125])
    ops = {
        name: refimpl.backend(backend).get(name)
        for name in ("uniform_soup", "learned_soup", "atlas_composition", "interpolate_params")
    }
    calls = {
        "uniform": (ops["uniform_soup"](models), lambda n: ops["uniform_soup"](_stack(models, n))),
        "learned": (
            ops["learned_soup"](models, alpha),
            lambda n: ops["learned_soup"](_stack(models, n), alpha),
        ),
        "learned per layer": (
            ops["learned_soup"](models, per_tensor_alpha),
            lambda n: ops["learned_soup"](_stack(models, n), per_tensor_alpha[n]),
        ),
        "atlas": (
            ops["atlas_composition"](theta0, models, lam),
            lambda n: ops["atlas_composition"](theta0[n], _stack(models, n), lam),
        ),
        "interpolate": (
            ops["interpolate_params"](models[0], models[1], lam=0.25),
            lambda n: ops["interpolate_params"](models[0][n], models[1][n], lam=0.25),
        ),
    }
    for label, (whole, per_tensor) in calls.items():
        assert list(whole) == list(models[0]), label  # the first model's names, in its order
        for name in SHAPES:
            np.testing.assert_array_equal(whole[name], per_tensor(name), err_msg=f"{label}: {name}")
            assert whole[name].shape == SHAPES[name]


def test_integer_buffers_are_copied_untouched_from_the_first_model():
    models = _models(2, 3)
    assert [int(m["bn.num_batches_tracked"]) for m in models] == [10, 11, 12]
    theta0 = _model(np.random.default_rng(3), steps=99)
    for merged, source in [
        (uniform_soup(models), models[0]),
        (learned_soup(models, np.zeros(3)), models[0]),
        (interpolate_params(models[2], models[0]), models[2]),
        (atlas_composition(theta0, models, np.ones(3)), theta0),
        (greedy_soup(models, np.array([0.1, 0.9, 0.5]), lambda model: 0.0)[0], models[0]),
    ]:
        buffer = merged["bn.num_batches_tracked"]
        assert buffer.dtype == np.int64 and int(buffer) == int(source["bn.num_batches_tracked"])


def test_name_and_shape_mismatches_are_refused():
    models = _models(4, 2)
    missing = {k: v for k, v in models[1].items() if k != "head.weight"}
    with pytest.raises(refimpl.InputError, match=r"missing \['head.weight'\]"):
        uniform_soup([models[0], missing])
    extra = {**models[1], "other.weight": np.ones(3)}
    with pytest.raises(refimpl.InputError, match=r"unexpected \['other.weight'\]"):
        interpolate_params(models[0], extra)
    reshaped = {**models[1], "encoder.weight": np.ones((3, 4))}
    with pytest.raises(refimpl.InputError, match="tensor 'encoder.weight' has shape"):
        learned_soup([models[0], reshaped], np.zeros(2))
    with pytest.raises(refimpl.InputError, match=r"missing \['scale'\]"):
        learned_soup(models, {k: np.zeros(2) for k in SHAPES if k != "scale"})
    with pytest.raises(refimpl.InputError, match="parameter tensor 'encoder.bias'"):
        atlas_composition(
            models[0], models, {**{k: np.zeros(2) for k in SHAPES}, "encoder.bias": np.zeros(3)}
        )


def test_learned_soup_whole_model_vjp_sums_the_shared_alpha_gradient_over_tensors():
    models = _models(5, 3)
    alpha = np.array([0.2, -0.5, 0.1])
    rng = np.random.default_rng(6)
    g_theta = {name: rng.standard_normal(shape) for name, shape in SHAPES.items()}
    soup, pullback = refimpl.vjp("learned_soup", models, alpha)
    (g_alpha,) = pullback(g_theta)
    per_tensor = []
    for name in SHAPES:
        theta, pull = refimpl.vjp("learned_soup", _stack(models, name), alpha)
        np.testing.assert_array_equal(soup[name], theta)
        per_tensor.append(pull(g_theta[name])[0])
    np.testing.assert_allclose(g_alpha, np.sum(per_tensor, axis=0), rtol=1e-14)
    # the same as the gradient of ⟨θ̄, θ(α)⟩ over the whole model, by central differences
    inner = lambda a: sum(float(np.sum(g_theta[n] * learned_soup(models, a)[n])) for n in SHAPES)  # noqa: E731
    numeric = [(inner(alpha + 1e-6 * e) - inner(alpha - 1e-6 * e)) / 2e-6 for e in np.eye(3)]
    np.testing.assert_allclose(g_alpha, numeric, rtol=1e-7, atol=1e-9)
    # per-layer logits: one gradient per tensor
    per_layer = {name: alpha * (i + 1) for i, name in enumerate(SHAPES)}
    _, pullback = refimpl.vjp("learned_soup", models, per_layer)
    (g_per_layer,) = pullback(g_theta)
    assert set(g_per_layer) == set(SHAPES)
    for name in SHAPES:
        _, pull = refimpl.vjp("learned_soup", _stack(models, name), per_layer[name])
        np.testing.assert_array_equal(g_per_layer[name], pull(g_theta[name])[0])


@pytest.mark.parametrize("backend", ["numba", refimpl_cupy.host_backend()], ids=["numba", "cupy[host]"])
def test_fast_backends_give_the_whole_model_gradients_of_the_reference(backend):
    models = _models(7, 2, np.float32)
    theta0 = _model(np.random.default_rng(8), np.float32)
    g_theta = {name: np.ones(shape, dtype=np.float32) for name, shape in SHAPES.items()}
    for name, args in [
        ("learned_soup", (models, np.array([0.4, -0.1], np.float32))),
        ("atlas_composition", (theta0, models, np.array([0.5, 2.0], np.float32))),
    ]:
        _, reference = refimpl.vjp(name, *args)
        _, fast = refimpl.vjp(name, *args, backend=backend)
        np.testing.assert_allclose(fast(g_theta)[0], reference(g_theta)[0], rtol=1e-5, atol=1e-6)


def test_greedy_soup_with_a_state_dict_oracle():
    models = _models(9, 4)
    target = {name: np.zeros(shape) for name, shape in SHAPES.items()}  # the held-out optimum: 0
    seen = []

    def score(model):
        return -sum(float(np.sum((model[n] - target[n]) ** 2)) for n in SHAPES)

    def held_out(model):
        assert isinstance(model, dict) and list(model) == list(models[0])
        assert int(model["bn.num_batches_tracked"]) == 10  # buffers of the first model
        seen.append(model)
        return score(model)

    accuracies = np.array([score(m) for m in models])
    soup, ingredients = greedy_soup(models, accuracies, held_out)
    assert len(seen) == 3 and isinstance(soup, dict) and list(soup) == list(models[0])
    # the same rule on the flattened models, with the oracle seeing the flat vector
    names = [n for n in models[0] if n in SHAPES]
    flat = np.stack([np.concatenate([m[n].reshape(-1) for n in names]) for m in models], axis=-1)
    flat_soup, flat_ingredients = greedy_soup(flat, accuracies, lambda theta: -float(np.sum(theta**2)))
    np.testing.assert_array_equal(ingredients, flat_ingredients)
    np.testing.assert_array_equal(np.concatenate([soup[n].reshape(-1) for n in names]), flat_soup)
    assert score(soup) >= accuracies.max() and ingredients[0] == int(np.argmax(accuracies))
    for name in SHAPES:
        np.testing.assert_allclose(
            soup[name], np.mean([models[k][name] for k in ingredients], axis=0), rtol=1e-12, atol=1e-14
        )


@pytest.mark.parametrize("backend", ["numba", refimpl_cupy.host_backend()], ids=["numba", "cupy[host]"])
def test_a_large_tensor_through_the_fast_backends_matches_the_reference(backend):
    """50 000 elements: the Numba inner products run in several parallel pieces (the cases never do)."""
    rng = np.random.default_rng(10)
    models = [
        {
            "big": rng.standard_normal((50, 1000)).astype(np.float32),
            "small": rng.standard_normal(3).astype(np.float32),
        }
        for _ in range(3)
    ]
    theta0 = {"big": rng.standard_normal((50, 1000)).astype(np.float32), "small": np.zeros(3, np.float32)}
    g_theta = {"big": rng.standard_normal((50, 1000)).astype(np.float32), "small": np.ones(3, np.float32)}
    coefficients = np.array([0.5, -1.0, 0.25], np.float32)
    for name, args in [
        ("learned_soup", (models, coefficients)),
        ("atlas_composition", (theta0, models, coefficients)),
    ]:
        expected, pull = refimpl.vjp(name, *args)
        actual, pull_fast = refimpl.vjp(name, *args, backend=backend)
        for key in ("big", "small"):
            np.testing.assert_allclose(actual[key], expected[key], rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(pull_fast(g_theta)[0], pull(g_theta)[0], rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(
        refimpl.backend(backend).get("uniform_soup")(models)["big"],
        uniform_soup(models)["big"],
        rtol=0,
        atol=0,
    )
