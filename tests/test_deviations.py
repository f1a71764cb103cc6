"""Known deviations of official code: each record's example shows the difference it describes,
the CLI lists them, and the verifier recognizes a port that reproduces one."""

import json
import math

import numpy as np
import pytest

import refimpl
from refimpl._deviations import matches, run_example
from refimpl.cli import main
from refimpl_conformance import check
from refimpl_conformance.deviations import run_transcription, transcription

DEVIATIONS = refimpl.deviations()
NAMES = [d.name for d in DEVIATIONS]


def test_the_deviations_found_so_far_are_recorded_against_their_ops():
    expected = {
        "facility_location_greedy": {"craig-lazy-greedy-index-0", "submodlib-ties-highest-index"},
        "coreset_cluster_weights": {"craig-cluster-ids-collide"},
        "class_budget_split": {
            "craig-equal-split-above-class-size",
            "craig-proportional-split-float-ceiling",
        },
        "poincare_fc": {"poincare-resnet-linreg-lambda", "hypll-fc-sinh-overflow"},
        "poincare_conv2d": {"poincare-resnet-conv-output-size"},
        "poincare_batch_norm": {"hypll-batchnorm-frechet-default"},
        "stablemax_cross_entropy": {"stablemax-two-branch-float32-nan"},
        "l_orth": {"wang2020-orthconv-padding"},
        "pissa_init": {"peft-pissa-float32-only"},
        "f_divergence_weight": {"fastgen-rkl-weighting-typeerror"},
        "weighted_interval_score": {"scoringrules-wis-median-term"},
        "mae_loss": {"ldr-mae-loss-missing-abs"},
        "corda_covariance": {"corda-covariance-divisor-256"},
        "corda_init": {"peft-corda-float32-only"},
        "eora_compensation": {"eora-negative-eigenvalue-smallest-positive", "eora-zero-eigenvalue-nan"},
        "fastfood_projection": {"fastfood-hadamard-backward-over-sqrt-l"},
        "said_reparam": {"said-size-all-named-parameters-plus-one"},
        "sara_sparse_reparam": {"sara-official-abs-first-forward"},
        "masked_nuclear_norm": {"sara-official-nuclear-norm-never-stepped"},
        "greedy_soup": {"model-soups-greedy-tie-order-reversed"},
        "uniform_soup": {"model-soups-uniform-running-sum"},
        "orthograd_step": {"orthograd-rescale-to-gradient-norm"},
        "energy_instance_weight": {"weat-weight-softplus-overflow"},
        "weat_loss": {"weat-kl-log-q-plus-1e-12"},
        "febs_dice_loss": {"febs-absent-group-zero-minimum"},
        "score_based_pruning": {"data-diet-offset-from-lowest"},
        "sparsity_constrained_ot_dual": {"pot-sparsity-dual-max-nz-at-least-m"},
        "proximal_matching_loss": {"lpn-proximal-matching-nan-gradient-at-zero-distance"},
        "vcb_loss": {"haco-bce-log-clamp-100"},
        "pinto_counterfactual_loss": {"pinto-label-smoothing-target"},
        "balora_consistency_loss": {"balora-nlg-kl-log-of-softmax"},
        "balora_diversity_loss": {"balora-nlg-entropy-log-eps"},
        "balora_svd_loss": {"balora-svd-no-gradient"},
        "aaer_loss": {"aaer-loss-gap-detached"},
        "adamixup_loss": {"adamixup-label-stop-gradient"},
        "drtune_semantic_calibration": {"drtune-single-member-class-squeeze"},
        "lfu_consistency_loss": {"lfu-consistency-mean-over-layers"},
        "topk_moe_routing": {"widenet-capacity-slot-zero"},
        "orthotrans_basis": {"olinear-orthotrans-column-normalization"},
        "max_w_mixed_op": {"sharpdarts-max-w-detached-in-multichannel"},
        "contracon_conv_weight": {"contracon-conv-bias-and-skip-gate"},
        "entropy_task_inference": {"contracon-entropy-of-mean-logits"},
        "cosine_power_annealing": {"cosine-power-annealing-empirical-normalization"},
        "rws_patch": {"rws-patch-squared-alpha"},
        "semi_permeable_attention": {"excelformer-additive-mask-1e4"},
        "sso_surrogate": {"sso-code-inverse-step-mean"},
        "adaptive_sharpness_apgd": {"apgd-sharpness-restart-keeps-iterate"},
        "kmq_cluster_weights": {"kmq-unshifted-softmax-overflow"},
        "kmq_draw_allocation": {"kmq-draw-size-per-round"},
        "solver_error_regularizer": {"ernode-mean-of-eest-dt"},
        "solver_stiffness_regularizer": {"srnode-max-over-stability-size"},
    }
    for op, names in expected.items():
        assert {d.name for d in refimpl.get(op).deviations} == names
    assert len(NAMES) == len(set(NAMES))
    for deviation in DEVIATIONS:
        assert deviation.source and deviation.official and deviation.paper and deviation.example is not None
        assert deviation.kind in ("variant", "bug", "convention")


@pytest.mark.parametrize("name", NAMES)
def test_the_minimal_example_shows_the_difference_the_record_states(name):
    deviation = next(d for d in DEVIATIONS if d.name == name)
    example = deviation.example
    assert matches(example.reference, run_example(deviation), example.rtol)  # refimpl: the paper
    assert not matches(example.official, run_example(deviation), example.rtol)  # which is not the official
    if deviation.flag:  # a variant: the flag reproduces the official output
        assert matches(example.official, run_example(deviation, with_flag=True), example.rtol)
    copied = transcription(name)
    if copied is not None:  # the transcribed official behaviour gives the recorded official output
        op = refimpl.get(deviation.op)
        dtype = next(
            (str(a.dtype) for a in example.args if isinstance(a, np.ndarray) and a.dtype.kind == "f"),
            "float64",
        )
        args = [
            a.astype(np.float64) if isinstance(a, np.ndarray) and a.dtype.kind == "f" else a
            for a in example.args
        ]
        official = run_transcription(op, copied, args, dict(example.kwargs), dtype)
        forward = {k: v for k, v in example.official.items() if not k.startswith("cotangent of")}
        assert matches(forward, official, example.rtol)


def test_every_bug_that_can_be_transcribed_is():
    untranscribed = {d.name for d in DEVIATIONS if not d.flag and transcription(d.name) is None}
    # hypll's Fréchet mean is an iterative solver, the conv output size a shape; the official N:M
    # grouping across rows runs on inputs refimpl refuses, and WTA-CRS's c = k choice sits inside
    # its sampler: their examples stand alone
    assert untranscribed == {
        "hypll-batchnorm-frechet-default",
        "poincare-resnet-conv-output-size",
        "nm-mask-groups-across-rows",
        "wta-crs-adaptive-size-at-c-equals-k",
    }


# -- the command line ---------------------------------------------------------------------------
def test_refimpl_deviations_lists_every_record_and_writes_json(tmp_path, capsys):
    path = tmp_path / "deviations.json"
    assert main(["deviations", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"{len(DEVIATIONS)} known deviations" in out
    records = json.loads(path.read_text())
    assert [r["name"] for r in records] == NAMES
    greedy = next(r for r in records if r["name"] == "submodlib-ties-highest-index")
    assert greedy["kind"] == "variant" and greedy["flag"] == {"tie_break": "highest"}
    assert greedy["example"]["official"] == {"indices": [3, 1]}
    # a function argument (an oracle) is written as its name and what it computes
    apgd = next(r for r in records if r["name"] == "apgd-sharpness-restart-keeps-iterate")
    assert apgd["example"]["args"][1].startswith("<function _sine_loss>: L(v) = Σ sin(3v): a non-concave")
    assert main(["deviations", "--op", "poincare_fc"]) == 0
    assert "2 known deviations" in capsys.readouterr().out


def test_refimpl_show_lists_an_ops_deviations(capsys):
    assert main(["show", "poincare_fc"]) == 0
    out = capsys.readouterr().out
    assert "Known deviations of official code (2):" in out
    assert "poincare-resnet-linreg-lambda [bug]" in out and "lam = 2 * (1 - c‖x‖²)" in out


# -- the verifier recognizes a port that reproduces one ------------------------------------------
torch = pytest.importorskip("torch")


def craig_lazy_greedy_port(g, y, budgets):
    """A PyTorch port of baharanm/craig's lazy greedy, faithful to it (index-0 test included)."""
    chosen = []
    for c in range(len(budgets)):
        points = torch.nonzero(y == c).flatten()
        budget = int(budgets[c])
        if budget == 0 or len(points) == 0:
            continue
        x = g[points].double()
        distances = torch.cdist(x, x)
        s = distances.max() - distances
        f_norm = 1.0 / s.max(dim=1).values.sum()
        norm = 1.0 / math.log(2.0)
        value, covered, selected = 0.0, torch.zeros(len(points), dtype=torch.float64), []

        def inc(j):
            if selected:
                if not j:  # the official `if not ndx`
                    return math.log(2.0)
                return float(norm * torch.log(1 + f_norm * torch.maximum(covered, s[:, j]).sum())) - value
            return float(norm * torch.log(1 + f_norm * s[:, j].sum())) - value

        heap = [(inc(j), j) for j in range(len(points))]
        while heap and len(selected) < budget:
            top = max(heap)
            heap.remove(top)
            gain = inc(top[1])
            if not gain >= 0:
                continue
            if heap and gain < max(heap)[0]:
                heap.append((gain, top[1]))
                continue
            covered = torch.maximum(covered, s[:, top[1]]) if selected else s[:, top[1]].clone()
            value = float(norm * torch.log(1 + f_norm * covered.sum()))
            selected.append(top[1])
        chosen.extend(int(points[j]) for j in selected)
    indices = torch.tensor(chosen, dtype=torch.int64)
    return indices, torch.ones(len(chosen), dtype=g.dtype)  # its gains are in other units


def test_a_port_of_craigs_lazy_greedy_is_told_which_known_deviation_it_reproduces():
    report = check("facility_location_greedy", craig_lazy_greedy_port, framework="torch")
    assert report.failures and report.recognized == ["craig-lazy-greedy-index-0"]
    assert all(f.detail.startswith("known deviation: matches baharanm/craig") for f in report.failures)
    assert all("refimpl follows the paper" in f.detail for f in report.failures)


def test_a_port_with_submodlibs_tie_rule_is_told_the_flag_to_pass():
    def highest_first(g, y, budgets, kernel="submodlib_euclidean", lazy=True, block_size=1024):
        greedy = refimpl.get("facility_location_greedy")
        return greedy(g, y, budgets, kernel=kernel, lazy=lazy, block_size=block_size, tie_break="highest")

    report = check("facility_location_greedy", highest_first)
    assert report.failures and report.recognized == ["submodlib-ties-highest-index"]
    assert all("pass tie_break='highest' to check against it" in f.detail for f in report.failures)


def test_scoringrules_weighted_interval_score_is_recognized():
    scoringrules = pytest.importorskip("scoringrules")

    def wis(y, q, tau, reduction="mean"):
        k = q.shape[1] // 2
        alphas = 2 * tau[:k]
        scores = scoringrules.weighted_interval_score(
            y, q[:, k], q[:, :k], q[:, ::-1][:, :k], alphas, backend="numpy"
        )
        scores = np.asarray(scores, dtype=y.dtype).reshape(y.shape)
        return {"mean": scores.mean, "sum": scores.sum}.get(reduction, lambda: scores)().astype(y.dtype)

    report = check("weighted_interval_score", wis, forward_only=True)
    assert report.failures and report.recognized == ["scoringrules-wis-median-term"]


def test_a_wrong_port_that_matches_no_deviation_is_a_bare_failure():
    def wrong(g, y, budgets, kernel="submodlib_euclidean", lazy=True, block_size=1024):
        indices, gains = refimpl.get("facility_location_greedy")(g, y, budgets, kernel=kernel, lazy=lazy)
        return indices[::-1].copy(), gains[::-1].copy()  # the selection order reversed

    report = check("facility_location_greedy", wrong)
    assert report.failures and not report.recognized
    assert not any("known deviation" in f.detail for f in report.failures)


def test_the_vectors_carry_the_official_variants(tmp_path):
    from refimpl_conformance.vectors import export_vectors

    export_vectors(tmp_path, ["facility_location_greedy"], seeds=range(1))
    document = json.loads((tmp_path / "facility_location_greedy.json").read_text())
    variants = [t for g in document["testGroups"] for t in g["tests"] if "OFFICIAL_VARIANT" in t["flags"]]
    assert variants and all(t["params"]["tie_break"] == "highest" for t in variants)
    assert any(t["comment"].startswith("official variant 'submodlib-ties-highest-index'") for t in variants)
    assert "OFFICIAL_VARIANT" in document["notes"]
