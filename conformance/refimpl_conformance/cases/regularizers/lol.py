"""Conformance cases for LoL: the comparative term, the ranking losses and FLOPS."""

from __future__ import annotations

import numpy as np

from refimpl.regularizers.lol import PADDING, positive_mask, query_ranking_rows

from ..._cases import Bench, ErrorCase, OpCases, Sample, register


def _padded_positives(rng, n_queries, n_passages, slots, counts=None):
    """Rows of distinct passage indices, each with 1..slots entries, padded with −1."""
    positives = np.full((n_queries, slots), -1, dtype=np.int64)
    for row in range(n_queries):
        count = int(rng.integers(1, slots + 1)) if counts is None else counts[row]
        positives[row, :count] = rng.choice(n_passages, size=count, replace=False)
    return positives


# -- lol_comparative_regularization ---------------------------------------------------------
LOL_NOTES = {
    "TIE": "exact ties with m = 0: the forward is the same, the VJP is 0 (default) or ±1/P "
    "(tie_active=True, the official margin_ranking_loss subgradient)",
    "ONE_REVISION": "n = 1: no pair, LoL = 0 and a zero gradient (P = 0 must not divide)",
    "REVERSED": "column order reversed: every satisfied pair becomes violated",
    "SATISFIED": "losses increasing along every row: LoL = 0, zero gradient",
    "PAIR_MEAN": "P = Q·n(n−1)/2 counts every pair, active or not (a mean over active pairs differs)",
}


def _lol_random(rng, Q, n):
    L = rng.gamma(2.0, 1.0, size=(Q, n)) * float(rng.choice([0.1, 1.0, 10.0]))
    kwargs = {"margin": float(rng.choice([0.0, 0.0, 0.1, 1.0])), "tie_active": bool(rng.integers(2))}
    return Sample("random", (L,), kwargs)


def _lol_edges():
    rng = np.random.default_rng(21)
    increasing = np.sort(rng.uniform(0.5, 3.0, size=(4, 3)), axis=1)
    tied = np.array([[1.0, 1.0, 2.0], [3.0, 3.0, 3.0]])
    return [
        Sample("ties, m = 0, default", (tied,), flags=("TIE",), fd=False, comment="a[q, i, j] = 0 on ties"),
        Sample(
            "ties, m = 0, tie_active",
            (tied,),
            {"tie_active": True},
            flags=("TIE",),
            fd=False,
            comment="row 1: every pair is a tie, gradient [2, 0, −2]/P",
        ),
        Sample("one revision per query", (rng.uniform(0, 2, size=(5, 1)),), flags=("ONE_REVISION",)),
        Sample("one query, one revision", (np.array([[0.7]]),), flags=("ONE_REVISION",)),
        Sample("losses increase along each row", (increasing,), flags=("SATISFIED",)),
        Sample(
            "same losses, columns reversed",
            (increasing[:, ::-1].copy(),),
            flags=("REVERSED", "PAIR_MEAN"),
            comment="every pair violated",
        ),
        Sample(
            "margin 0.5 activates satisfied pairs",
            (np.array([[1.0, 1.2, 3.0], [2.0, 1.0, 0.0]]),),
            {"margin": 0.5},
            flags=("PAIR_MEAN",),
        ),
        Sample(
            "losses ~1e4",
            (1e4 + rng.uniform(0, 1, size=(3, 4)),),
            comment="L_i − L_j is exact in float32 (Sterbenz), so float32 agrees",
        ),
    ]


def _lol_torch(torch, args, kwargs, cotangent):
    """(1/P) Σ_q Σ_{i<j} max(0, L_qi − L_qj + m): F.relu (a tie's gradient 0) or clamp(min=0)
    (tie_active: torch.clamp passes the gradient at D = 0, as margin_ranking_loss does)."""
    L = torch.from_numpy(args[0]).requires_grad_()
    margin, tie_active = kwargs.get("margin", 0.0), kwargs.get("tie_active", False)
    n_queries, n = L.shape
    pairs = max(n_queries * n * (n - 1) // 2, 1)  # n = 1: no pair, LoL = 0 (the sum is empty)
    upper = torch.ones((n, n), dtype=torch.bool).triu(diagonal=1)
    g = torch.from_numpy(cotangent)

    def step():
        L.grad = None
        margins = (L[:, :, None] - L[:, None, :] + margin)[:, upper]  # (Q, pairs of a row)
        hinge = margins.clamp(min=0) if tie_active else torch.nn.functional.relu(margins)
        lol = hinge.sum() / pairs
        lol.backward(g)
        return lol

    return step


register(
    OpCases(
        "lol_comparative_regularization",
        dims={"Q": (1, 6), "n": (1, 4)},
        random=_lol_random,
        edges=_lol_edges,
        notes=LOL_NOTES,
        bench=Bench(
            sizes={"Q": "rows", "n": 8},
            torch=_lol_torch,
            torch_label="pairwise L_i − L_j + m over i < j, F.relu (tie_active: clamp(min=0)), sum/P; "
            "autograd backward",
        ),
    )
)


# -- lol_passage_ranking_loss ---------------------------------------------------------------
PASSAGE_NOTES = {
    "MASKED_POSITIVE": "a second positive never enters the softmax (masked to −∞, not a negative)",
    "LABEL_TIE": "two positives with the same lowest similarity: the label is the lowest passage index",
    "ONLY_LABEL": "every passage but the label is masked: the softmax has one entry, pr = 0",
    "LARGE_SCORES": "similarities ~±300: the row max must be subtracted (exp overflows otherwise)",
}


def _passage_random(rng, Q, P, V, K):
    K = min(K, P)
    queries = rng.standard_normal((Q, V)) * float(rng.choice([0.3, 1.0, 3.0]))
    corpus = rng.standard_normal((P, V))
    return Sample("random", (queries, corpus, _padded_positives(rng, Q, P, K)))


def _passage_edges():
    rng = np.random.default_rng(22)
    corpus = np.array([[2.0, 0.0], [1.0, 0.0], [0.0, 1.0], [-1.0, 0.5]])
    queries = np.array([[1.0, 0.0], [1.0, 0.3]])
    tie_corpus = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.5, 0.5]])  # passages 0 and 2 tie
    big_queries = 30 * rng.standard_normal((3, 4))
    big_corpus = 10 * rng.standard_normal((6, 4))
    return [
        Sample(
            "second positive masked",
            (queries, corpus, np.array([[0, 1], [1, -1]])),
            flags=("MASKED_POSITIVE",),
            comment="row 0: label 1 (S = 1 < 2), passage 0 masked",
        ),
        Sample(
            "tie in the lowest-scoring positive",
            (np.array([[1.0, 0.2]]), tie_corpus, np.array([[2, 0]])),
            flags=("LABEL_TIE",),
            fd=False,
            comment="S[0] = S[2] = 1: label 0 (lowest index, though listed second); FD would flip it",
        ),
        Sample(
            "only the label is left",
            (queries[:1], corpus, np.array([[0, 1, 3, 2]])),
            flags=("ONLY_LABEL",),
            comment="label 3 (S = −1); pr = 0 and a zero gradient",
        ),
        Sample(
            "large similarities",
            (big_queries, big_corpus, np.array([[0, -1], [3, 5], [1, -1]])),
            flags=("LARGE_SCORES",),
            fd_step=1e-7,
            fd_rtol=1e-5,
        ),
        Sample("one passage", (np.array([[0.4, -1.0]]), np.array([[1.0, 2.0]]), np.array([[0]]))),
    ]


def _passage_errors():
    queries, corpus = np.ones((2, 3)), np.ones((4, 3))
    return [
        ErrorCase(
            "a query without positives",
            (queries, corpus, np.array([[1, -1], [-1, -1]])),
            match=r"'positives'.*at least one positive.*row 1",
        ),
        ErrorCase(
            "a passage twice in a row",
            (queries, corpus, np.array([[1, 1], [0, -1]])),
            match=r"'positives'.*distinct.*row 0",
        ),
    ]


def _positive_mask_torch(torch, positives, n_passages):
    """Boolean (Q, P) mask of the padded positive indices (−1 goes to a dropped extra column)."""
    slots = torch.where(positives == PADDING, n_passages, positives)
    mask = torch.zeros((positives.shape[0], n_passages + 1), dtype=torch.bool)
    return mask.scatter_(1, slots, True)[:, :n_passages]


def _passage_torch(torch, args, kwargs, cotangent):
    """S = q Cᵀ; label = first argmin over the positives; the other positives masked to −∞;
    F.cross_entropy per row."""
    queries, corpus = (torch.from_numpy(a).requires_grad_() for a in args[:2])
    positives = torch.from_numpy(args[2]).long()
    rows = torch.arange(queries.shape[0])
    g = torch.from_numpy(cotangent)

    def step():
        queries.grad = corpus.grad = None
        scores = queries @ corpus.T
        is_positive = _positive_mask_torch(torch, positives, corpus.shape[0])
        with torch.no_grad():  # the label is piecewise constant in S
            labels = torch.where(is_positive, scores, torch.inf).argmin(dim=1)
        drop = is_positive.clone()
        drop[rows, labels] = False
        pr = torch.nn.functional.cross_entropy(scores.masked_fill(drop, -torch.inf), labels, reduction="none")
        pr.backward(g)
        return pr

    return step


def _ranking_blas(rows, passages, vocabulary, dtype):
    """The score product S = q Cᵀ (rows × passages) and its two VJP products S̄ C and S̄ᵀ q."""
    q = np.ones((rows, vocabulary), dtype=dtype)
    C = np.ones((passages, vocabulary), dtype=dtype)
    S = np.ones((rows, passages), dtype=dtype)

    def step():
        return q @ C.T, S @ C, S.T @ q

    return step


def _passage_exps(args, kwargs):
    # one exp per kept score (all but the K − 1 masked positives of each row), one log per row
    n_queries, n_passages = args[0].shape[0], args[1].shape[0]
    masked = int((args[2] != PADDING).sum()) - n_queries
    return n_queries * n_passages - masked + n_queries


register(
    OpCases(
        "lol_passage_ranking_loss",
        dims={"Q": (1, 6), "P": (1, 9), "V": (1, 5), "K": (1, 3)},
        random=_passage_random,
        edges=_passage_edges,
        errors=_passage_errors,
        notes=PASSAGE_NOTES,
        bench=Bench(
            sizes={"Q": 256, "P": 4096, "V": 256, "K": 4},
            torch=_passage_torch,
            torch_label="q @ Cᵀ, argmin label under no_grad, masked_fill −inf, "
            "F.cross_entropy(reduction='none'); autograd backward",
            transcendentals=_passage_exps,
            blas=lambda args, kwargs: _ranking_blas(
                args[0].shape[0], args[1].shape[0], args[0].shape[1], args[0].dtype
            ),
        ),
    )
)


# -- lol_query_ranking_loss ---------------------------------------------------------------
QUERY_NOTES = {
    "SHARED_MASKED": "a positive of two groups (more than n owners): the other group's queries are "
    "masked to −∞; the own group's other revisions stay as competitors",
    "SHARED_NOT_MASKED": "a passage listed by queries of two groups but by at most n queries in all: "
    "the official code does not mask (its count test), so neither does the reference",
    "SHARED_PASSAGE_ROWS": "two rows with the same passage: their gradients add into one column of S̄",
    "ONE_REVISION": "n = 1: every query is its own group",
}


def _query_random(rng, Q0, n, P, V, K):
    K = min(K, P)
    n_queries = Q0 * n
    queries = rng.standard_normal((n_queries, V)) * float(rng.choice([0.3, 1.0, 3.0]))
    corpus = rng.standard_normal((P, V))
    group_positives = _padded_positives(rng, Q0, P, K)
    positives = np.repeat(group_positives, n, axis=0)  # revisions keep their query's positives
    return Sample("random", (queries, corpus, positives), {"n_revisions": n})


def _query_edges():
    rng = np.random.default_rng(23)
    queries = rng.standard_normal((6, 3))
    corpus = rng.standard_normal((5, 3))
    shared = np.array([[0, 2], [0, 2], [2, 3], [2, 3], [4, -1], [4, -1]])  # passage 2: groups 0 and 1
    few_owners = np.array([[0, 2], [0, -1], [2, -1], [3, -1]])  # passage 2: 2 owners, n = 2
    return [
        Sample(
            "positive shared by two groups",
            (queries, corpus, shared),
            {"n_revisions": 2},
            flags=("SHARED_MASKED", "SHARED_PASSAGE_ROWS"),
            comment="passage 2 has 4 owners > n = 2: rows of group 0 mask queries 2, 3 and vice versa",
        ),
        Sample(
            "shared passage with at most n owners",
            (queries[:4], corpus, few_owners),
            {"n_revisions": 2},
            flags=("SHARED_NOT_MASKED",),
            comment="passage 2 is listed by queries 0 and 2 only (2 ≤ n): nothing masked",
        ),
        Sample(
            "one revision per query",
            (queries[:3], corpus, np.array([[0, 1], [1, -1], [4, -1]])),
            {"n_revisions": 1},
            flags=("ONE_REVISION", "SHARED_MASKED"),
            comment="passage 1 has 2 owners > 1: row (0, 1) masks query 1, row (1, 1) masks query 0",
        ),
        Sample(
            "one query",
            (np.array([[0.5, -0.2]]), np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([[1]])),
            {"n_revisions": 1},
            comment="a softmax over one query: qr = 0",
        ),
    ]


def _query_errors():
    queries, corpus = np.ones((4, 3)), np.ones((5, 3))
    positives = np.array([[0], [0], [1], [1]])
    return [
        ErrorCase(
            "Q not a multiple of n",
            (queries[:3], corpus, positives[:3]),
            {"n_revisions": 2},
            match=r"'queries'.*multiple of n_revisions = 2.*Q = 3",
        ),
        ErrorCase(
            "a query without positives",
            (queries, corpus, np.array([[0], [-1], [1], [1]])),
            {"n_revisions": 2},
            match=r"'positives'.*row 1",
        ),
    ]


def _query_rows(positives, n_passages, n_revisions):
    """NumPy: the loss rows' labels and passages, and how many of their Q scores are masked."""
    labels, passages = query_ranking_rows(positives, n_revisions)
    is_positive = positive_mask(positives, n_passages)
    owners = is_positive[:, passages].T
    shared = is_positive.sum(axis=0)[passages] > n_revisions
    group = np.arange(positives.shape[0]) // n_revisions
    masked = owners & (group[None, :] != group[labels][:, None]) & shared[:, None]
    return labels, passages, int(masked.sum())


def _query_torch(torch, args, kwargs, cotangent):
    """Only the R needed columns of S: logits = C[passages] qᵀ (R, Q), the other groups' owners
    masked to −∞ (when a passage has more than n owners), F.cross_entropy mean."""
    queries, corpus = (torch.from_numpy(a).requires_grad_() for a in args[:2])
    positives = torch.from_numpy(args[2]).long()
    n = kwargs["n_revisions"]
    group = torch.arange(queries.shape[0]) // n
    g = torch.from_numpy(cotangent)

    def step():
        queries.grad = corpus.grad = None
        originals = positives[::n]
        group_rows, slots = torch.nonzero(originals != PADDING, as_tuple=True)  # row-major
        labels, passages = group_rows * n, originals[group_rows, slots]
        is_positive = _positive_mask_torch(torch, positives, corpus.shape[0])
        owners = is_positive[:, passages].T  # (R, Q)
        shared = is_positive.sum(dim=0)[passages] > n
        masked = owners & (group[None, :] != group[labels][:, None]) & shared[:, None]
        logits = corpus[passages] @ queries.T  # (R, Q) = S[:, passages]ᵀ
        qr = torch.nn.functional.cross_entropy(logits.masked_fill(masked, -torch.inf), labels)
        qr.backward(g)
        return qr

    return step


def _query_exps(args, kwargs):
    # one exp per kept score of the R × Q softmax rows, one log per row
    labels, _, masked = _query_rows(args[2], args[1].shape[0], kwargs["n_revisions"])
    return labels.shape[0] * args[0].shape[0] - masked + labels.shape[0]


def _query_blas(args, kwargs):
    # the R needed columns only: S[:, passages] = q C[passages]ᵀ and its VJP products
    labels, _, _ = _query_rows(args[2], args[1].shape[0], kwargs["n_revisions"])
    return _ranking_blas(args[0].shape[0], labels.shape[0], args[0].shape[1], args[0].dtype)


register(
    OpCases(
        "lol_query_ranking_loss",
        dims={"Q0": (1, 4), "n": (1, 3), "P": (1, 8), "V": (1, 4), "K": (1, 3)},
        random=_query_random,
        edges=_query_edges,
        errors=_query_errors,
        notes=QUERY_NOTES,
        bench=Bench(
            sizes={"Q0": 64, "n": 4, "P": 4096, "V": 256, "K": 4},
            torch=_query_torch,
            torch_label="C[passages] @ qᵀ (the R needed columns of S), owner mask −inf, "
            "F.cross_entropy mean; autograd backward",
            transcendentals=_query_exps,
            blas=_query_blas,
        ),
    )
)


# -- flops_regularizer ------------------------------------------------------------------------
FLOPS_NOTES = {
    "ZEROS": "exact zeros (ReLU'd sparse vectors): sign(0) = 0, the subgradient PyTorch uses; "
    "central differences agree",
    "ONE_QUERY": "Q = 1: flops = ‖q‖₂², l1 = ‖q‖₁",
}


def _flops_random(rng, Q, V):
    queries = rng.standard_normal((Q, V)) * float(rng.choice([0.1, 1.0, 5.0]))
    return Sample("random", (queries,))


def _flops_edges():
    rng = np.random.default_rng(24)
    sparse = np.maximum(rng.standard_normal((5, 8)), 0)  # ~half exact zeros, as after a ReLU
    return [
        Sample("relu-sparse vectors", (sparse,), flags=("ZEROS",)),
        Sample("an all-zero term", (np.array([[0.0, 1.0], [0.0, -2.0]]),), flags=("ZEROS",)),
        Sample("one query", (rng.standard_normal((1, 6)),), flags=("ONE_QUERY",)),
    ]


def _flops_torch(torch, args, kwargs, cotangent):
    """a = mean_q |q|; flops = Σ a², l1 = Σ|q|/Q; autograd backward of both."""
    queries = torch.from_numpy(args[0]).requires_grad_()
    n_queries = queries.shape[0]
    g = tuple(torch.from_numpy(c) for c in cotangent)

    def step():
        queries.grad = None
        magnitudes = queries.abs()
        mean_magnitude = magnitudes.sum(dim=0) / n_queries
        flops = (mean_magnitude * mean_magnitude).sum()
        l1 = magnitudes.sum() / n_queries
        torch.autograd.backward((flops, l1), g)
        return flops, l1

    return step


register(
    OpCases(
        "flops_regularizer",
        dims={"Q": (1, 6), "V": (1, 8)},
        random=_flops_random,
        edges=_flops_edges,
        notes=FLOPS_NOTES,
        bench=Bench(
            sizes={"Q": "rows", "V": "cols"},
            torch=_flops_torch,
            torch_label="abs, column means, Σ a² and Σ|q|/Q; autograd backward of both",
        ),
    )
)
