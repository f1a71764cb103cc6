"""Layer-adaptive pruning levels by a dynamic program over a common budget grid (Efficient Joint
Optimization of Layer-Adaptive Weight Pruning)."""

from __future__ import annotations

import numpy as np

from ..authoring import ArgumentError, FloatArray, IntArray, IntScalar, Paper, array_namespace, op

__all__ = ["PAPER", "layer_adaptive_pruning_dp", "multiple_choice_knapsack"]

EXPORTS = ("multiple_choice_knapsack",)  # the dynamic program, shared with bit_allocation_knapsack

PAPER = Paper(
    "Efficient Joint Optimization of Layer-Adaptive Weight Pruning in Deep Neural Networks",
    arxiv="2308.10438",
    year=2023,
    code="Akimoto-Cris/RD_VIT_PRUNE",
)


MAX_DP_CELLS = 2**24  # the largest DP table (layers or options × budget grid) the op builds


def multiple_choice_knapsack(costs, sizes, target):
    r"""Pick one option per layer: least total cost with total size ≥ ``target`` (exact DP).

    ``costs`` (L, K) float (+inf marks an option that does not exist), ``sizes`` (L, K)
    non-negative integers on a common grid, ``target`` an integer. With the budget grid
    ``c = 0 … Σ_l max_k sizes[l, k]``::

        D[0][0] = 0,  D[0][c > 0] = +inf
        D[l][c] = min_k D[l−1][c − sizes[l, k]] + costs[l, k]      (c − sizes[l, k] ≥ 0)

    The total size is the smallest ``c* ≥ target`` where ``D[L][c]`` is least, and the
    choices are read back from the last layer to the first: at layer l with total c, the
    lowest option index k with ``D[l−1][c − sizes[l, k]] + costs[l, k] = D[l][c]``
    (recorded during the forward sweep as the first minimum). Among optimal allocations this is
    the one with the smallest total size, then the lowest index in the last layer, then in
    the one before, and so on. O(L·|C|·K) time, O(L·|C|) memory. Costs are summed in float64,
    layer by layer, in layer order.

    Returns ``(choice (L,) int64, total cost (float), total size (int))``. The caller makes
    sure the target is reachable.
    """
    costs = np.asarray(costs, dtype=np.float64)
    sizes = np.asarray(sizes, dtype=np.int64)
    layers, options = costs.shape
    span = int(sizes.max(axis=1).sum())
    best = np.full(span + 1, np.inf)
    best[0] = 0.0
    chosen = np.zeros((layers, span + 1), dtype=np.int64)
    columns = np.arange(span + 1)
    for layer in range(layers):
        candidates = np.full((options, span + 1), np.inf)
        for k in range(options):
            size, cost = int(sizes[layer, k]), costs[layer, k]
            if np.isinf(cost):
                continue  # an option this layer does not have
            candidates[k, size:] = best[: span + 1 - size] + cost
        chosen[layer] = np.argmin(candidates, axis=0)  # the first minimum: the lowest option index
        best = candidates[chosen[layer], columns]
    total = int(target + np.argmin(best[target:]))  # the least cost, at the smallest total size
    choice = np.empty(layers, dtype=np.int64)
    remaining = total
    for layer in range(layers - 1, -1, -1):
        choice[layer] = chosen[layer, remaining]
        remaining -= int(sizes[layer, choice[layer]])
    return choice, float(best[total]), total


def check_menus(costs, sizes, target, names):
    """The DP's domain: each layer has an option of finite cost, and the target is reachable
    (at most the sum over layers of the largest size among finite-cost options)."""
    cost_name, size_name, target_name = names
    xp = array_namespace(costs)
    finite = xp.isfinite(costs)
    missing = ~finite.any(axis=1)
    if bool(missing.any()):
        layer = int(xp.argmax(missing))
        raise ArgumentError(
            cost_name,
            "at least one option of finite cost per layer (+inf marks a missing option)",
            f"none in layer {layer}",
        )
    span = int(sizes.max(axis=1).sum()) + 1  # the DP's budget grid 0 … Σ_l max_k size
    cells = span * max(int(sizes.shape[0]), int(sizes.shape[1]))
    if cells > MAX_DP_CELLS:
        raise ArgumentError(
            size_name,
            f"sizes on a grid the dynamic program can hold: max(L, K)·(Σ_l max_k {size_name}[l, k] + 1) "
            f"<= 2^{MAX_DP_CELLS.bit_length() - 1} cells (divide the sizes onto a coarser grid)",
            f"{cells} cells",
        )
    reachable = int(xp.where(finite, sizes, 0).max(axis=1).sum())
    if target > reachable:
        raise ArgumentError(
            target_name,
            f"a target the options can reach: at most Σ_l max_k {size_name}[l, k] = {reachable} "
            "(over options of finite cost)",
            f"{target}",
        )


def _check(arguments) -> None:
    check_menus(
        arguments["distortion"], arguments["levels"], arguments["target"], ("distortion", "levels", "target")
    )


@op(
    inputs={
        "distortion": FloatArray("L", "K", allow=("inf",)),
        "levels": IntArray("L", "K", low=0),
        "target": IntScalar(0),
    },
    outputs=("choice", "total_distortion", "total_pruned"),
    check=_check,
)
def layer_adaptive_pruning_dp(distortion, levels, *, target):
    r"""Layer-adaptive pruning: the pruning level of every layer that meets a global target at
    the least summed output distortion, by a dynamic program.

    Pruning each layer to the same sparsity ignores that layers differ in how much their
    pruning hurts the output. The paper measures, for every layer l and every level s on a
    menu ``S_l`` (how many of its smallest-magnitude weights are removed, or the FLOPs saved,
    on a common integer grid), the output distortion with *only that layer* pruned::

        δ_l(s) = E_x ‖f(x; W) − f(x; W with layer l pruned to s)‖²

    and assumes the distortions add up across layers, ``δ(s_1, …, s_L) ≈ Σ_l δ_l(s_l)`` (exact
    for one layer; first order for small perturbations). The allocation problem then is a
    multiple-choice knapsack::

        min_{s_1 … s_L} Σ_l δ_l(s_l)     subject to   Σ_l s_l ≥ T

    solved exactly by a dynamic program over the budget grid ``c = 0 … Σ_l max S_l``::

        D[0][0] = 0,  D[0][c > 0] = +inf
        D[l][c] = min_{s ∈ S_l} D[l−1][c − s] + δ_l(s)

    then ``c* = `` the smallest ``c ≥ T`` with the least ``D[L][c]``, and backtracking from the
    last layer: at layer l with total c, the lowest menu index attaining ``D[l][c]``; then
    ``c ← c − s``. Ties: among optimal allocations, the smallest total, then the lowest index
    in the last layer, then in the layer before, and so on. O(L·|C|·K) time. The distortions
    are summed in float64 (a float32 running sum could reorder near-equal allocations);
    the reported total is cast to their dtype.

    Menus of different lengths are padded with ``δ = +inf`` (an option that does not exist).

    Args:
        distortion: δ_l(s) (L, K), float32 or float64, finite or +inf (a missing option);
            negative values (measurement noise) are allowed.
        levels: the pruning levels s (L, K), non-negative integers on the common grid (pruned
            weights in units of the grid step, or FLOPs saved).
        target: T, the total to reach (required), an integer ≥ 0 the menus can reach.

    Returns:
        choice: (L,) int64, the menu index chosen in every layer.
        total_distortion: Σ_l δ_l(s_l), a scalar in the dtype of ``distortion``.
        total_pruned: Σ_l s_l (≥ T), a scalar int64.

    Reference: *Efficient Joint Optimization of Layer-Adaptive Weight Pruning in Deep Neural
    Networks*, ICCV 2023, arXiv:2308.10438 (the additivity assumption and the dynamic
    program); official code Akimoto-Cris/RD_VIT_PRUNE (not checked).

    >>> import numpy as np, refimpl
    >>> distortion = np.array([[0.0, 1.0, 5.0], [0.0, 2.0, 3.0]])  # layer 2's last step is cheap
    >>> levels = np.array([[0, 1, 2], [0, 1, 2]])
    >>> choice, total, pruned = refimpl.quantization_sparsity.layer_adaptive_pruning_dp(
    ...     distortion, levels, target=2)
    >>> choice.tolist(), float(total), int(pruned)  # (1, 1) costs 3, (0, 2) costs 3: lower index last
    ([1, 1], 3.0, 2)
    """
    choice, total, pruned = multiple_choice_knapsack(distortion, levels, target)
    return (choice, np.asarray(total, dtype=distortion.dtype), np.asarray(pruned, dtype=np.int64)), None
