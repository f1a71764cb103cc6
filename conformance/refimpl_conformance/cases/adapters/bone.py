"""Conformance cases for `bone_block_affine`, `bone_unmerge` and `miss_shared_block`.

Shapes are drawn in blocks: out = NB·r and in = NJ·r (NB row-blocks, NJ column-blocks of
r × r), so every drawn Bone weight splits exactly; MiSS draws in and r freely (padding).
"""

from __future__ import annotations

import numpy as np

from ..._cases import Bench, ErrorCase, OpCases, Sample, register

BLOCK_NOTES = {
    "ZERO_B": "B = 0 (Bone's initialization): y = x Wᵀ + b exactly, yet "
    "B̄ = Σ_j (W_{a,j}ᵀ G_{a,j} + G_{a,j}) ≠ 0",
    "NON_SQUARE": "out ≠ in: a backend that mixes up the row- and column-block axes (or transposes "
    "B_a) fails here, where a square W can hide it",
    "SCALAR_BLOCKS": "r = 1: every entry is its own block, ΔW[o, i] = W[o, i]·b_o + b_o",
    "SINGLE_BLOCK": "r = out = in: one block, W' = W(I + B) + B",
    "MANY_BLOCKS": "r = 4 with 3 × 2 blocks: the sum over column-blocks j in B̄",
    "BATCH_DIMS": "x with several leading dimensions: G = Σ over all of them",
    "SINGLE_VECTOR": "x of shape (in,): no batch dimension at all",
    "NO_BIAS": "bias None: the optional frozen argument is skipped",
    "MINUS_IDENTITY": "B_a = −I: every block of row-block a becomes −I whatever W is (I + B_a = 0); the "
    "forward is defined, only the merge cannot be undone",
}

UNMERGE_NOTES = {
    "ZERO_B": "B = 0: W = W' exactly",
    "NON_SQUARE": "out ≠ in: row-block and column-block axes cannot be swapped unnoticed",
    "SCALAR_BLOCKS": "r = 1: W = (W' − b_a)/(1 + b_a) entrywise",
    "ILL_CONDITIONED": "I + B_a with condition number ~1e3: a solve in low precision loses digits "
    "(PEFT inverts in float32); still invertible",
    "NEGATIVE_DEFINITE": "I + B_a with negative eigenvalues (B_a = −3I plus noise): invertible, only "
    "the sign of the blocks flips",
}

MISS_NOTES = {
    "ZERO_B": "B = 0 (PEFT's initialization): y = x Wᵀ + b exactly, yet B̄ = Sᵀ g ≠ 0",
    "PADDING": "in % r ≠ 0: x is zero-padded to a multiple of r; x̄ drops the padded positions",
    "R_ABOVE_IN": "r > in: one padded block, s = [x, 0, ..., 0]",
    "R_ONE": "r = 1: s = Σ_i x_i, ΔW[o, i] = B[0, o] for every i",
    "R_EQUALS_IN": "r = in: one block, s = x, ΔW = Bᵀ",
    "BATCH_DIMS": "x with several leading dimensions",
    "SINGLE_VECTOR": "x of shape (in,)",
    "NO_BIAS": "bias None",
}


# -- bone_block_affine ---------------------------------------------------------------------------
def _bone_layer(rng, T, NB, NJ, R, batch=None):  # noqa: N803 - dimension names as in the specs
    out_features, in_features = NB * R, NJ * R
    x = rng.standard_normal((T, in_features) if batch is None else (*batch, in_features))
    W = rng.standard_normal((out_features, in_features)) / np.sqrt(in_features)
    B = 0.5 * rng.standard_normal((NB, R, R)) / np.sqrt(R)
    bias = rng.standard_normal(out_features)
    return x, W, B, bias


def _block_random(rng, T, NB, NJ, R):  # noqa: N803
    x, W, B, bias = _bone_layer(rng, T, NB, NJ, R)
    return Sample("random", (x, W, B, bias) if rng.random() < 0.5 else (x, W, B))


def _block_edges():
    rng = np.random.default_rng(79)
    x, W, B, bias = _bone_layer(rng, 3, 2, 3, 2)  # W (4, 6)
    minus_identity = B.copy()
    minus_identity[1] = -np.eye(2)
    return [
        Sample("B = 0, with bias", (x, W, np.zeros_like(B), bias), flags=("ZERO_B",), comment="y = x Wᵀ + b"),
        Sample("non-square W (4, 6), r = 2", (x, W, B, bias), flags=("NON_SQUARE",)),
        Sample(
            "non-square W (6, 4), r = 2, no bias",
            _bone_layer(rng, 2, 3, 2, 2)[:3],
            flags=("NON_SQUARE", "NO_BIAS"),
        ),
        Sample("r = 1 on (3, 5)", _bone_layer(rng, 4, 3, 5, 1), flags=("SCALAR_BLOCKS", "NON_SQUARE")),
        Sample("r = out = in = 3", _bone_layer(rng, 3, 1, 1, 3), flags=("SINGLE_BLOCK",)),
        Sample(
            "r = 4, 3 × 2 blocks (12, 8)", _bone_layer(rng, 5, 3, 2, 4), flags=("MANY_BLOCKS", "NON_SQUARE")
        ),
        Sample("batch dims (2, 3, in)", _bone_layer(rng, 0, 2, 3, 2, batch=(2, 3)), flags=("BATCH_DIMS",)),
        Sample(
            "single input vector (in,)", _bone_layer(rng, 0, 2, 2, 2, batch=())[:3], flags=("SINGLE_VECTOR",)
        ),
        Sample("B_1 = −I (I + B_1 = 0)", (x, W, minus_identity, bias), flags=("MINUS_IDENTITY",)),
    ]


def _block_errors():
    x = np.ones((2, 5))
    return [
        ErrorCase("in % r ≠ 0", (x, np.ones((4, 5)), np.zeros((2, 2, 2))), match=r"'W'.*in % r = 0"),
        ErrorCase(
            "out % r ≠ 0", (np.ones((2, 4)), np.ones((5, 4)), np.zeros((2, 2, 2))), match=r"'W'.*out % r = 0"
        ),
        ErrorCase(
            "B has 3 row-blocks for out/r = 2",
            (np.ones((2, 4)), np.ones((4, 4)), np.zeros((3, 2, 2))),
            match=r"'B'.*\(2, 2, 2\)",
        ),
    ]


def _peft_bat_torch(torch, args, kwargs, cotangent):
    """peft's Bone/MiSS ``init_weights="bat"`` forward (reshape/permute, then F.linear) and autograd."""
    x, W, B, bias = (torch.from_numpy(a) if a is not None else None for a in (*args, None)[:4])
    x.requires_grad_(), B.requires_grad_()
    g_y = torch.from_numpy(cotangent)
    out_features, in_features = W.shape
    r = B.shape[-1]

    def step():
        blocks = W.reshape(out_features // r, r, in_features // r, r).permute(2, 0, 1, 3)
        delta = (blocks @ B + B).permute(1, 2, 0, 3).reshape(out_features, in_features)
        y = torch.nn.functional.linear(x, W + delta, bias)
        x.grad = B.grad = None
        y.backward(g_y)
        return y

    return step


def _bone_blas(args, kwargs):
    """Forward: the slab products W_a B_a ((r·in/r, r)·(r, r) per row-block) and x W'ᵀ;
    backward: g W', G = gᵀ x and the slab products slab_a(W)ᵀ slab_a(G)."""
    x, W, B = args[0], args[1], args[2]
    rank = B.shape[-1]
    x_rows = x.reshape(-1, W.shape[1])
    g_rows = np.ones((x_rows.shape[0], W.shape[0]), dtype=x.dtype)
    slabs = W.reshape(W.shape[0] // rank, -1, rank)  # the row segments' shape (same products)

    def step():
        slabs @ B
        x_rows @ W.T
        g_rows @ W
        G = g_rows.T @ x_rows
        slabs.transpose(0, 2, 1) @ G.reshape(slabs.shape)

    return step


register(
    OpCases(
        "bone_block_affine",
        dims={"T": (1, 5), "NB": (1, 3), "NJ": (1, 3), "R": (1, 3)},
        random=_block_random,
        edges=_block_edges,
        errors=_block_errors,
        notes=BLOCK_NOTES,
        defaults={"bias": None},
        bench=Bench(
            sizes={"T": "rows", "NB": 16, "NJ": 16, "R": 64},
            torch=_peft_bat_torch,
            torch_label="peft's bat forward: reshape/permute block product, then F.linear (autograd)",
            blas=_bone_blas,
        ),
    )
)


# -- bone_unmerge --------------------------------------------------------------------------------
def _merged(W, B):
    """W' = W + W_{a,j} B_a + B_a, written with an einsum over the 4-d block view (independent
    of the reference's slab reshape)."""
    NB, R, _ = B.shape  # noqa: N806
    blocks = W.reshape(NB, R, W.shape[1] // R, R)
    merged = blocks + np.einsum("apjm,amq->apjq", blocks, B) + B[:, :, None, :]
    return merged.reshape(W.shape)


def _unmerge_sample(rng, NB, NJ, R, spread=0.3):  # noqa: N803
    W = rng.standard_normal((NB * R, NJ * R))
    B = spread * rng.standard_normal((NB, R, R)) / np.sqrt(R)
    return _merged(W, B), B


def _unmerge_random(rng, NB, NJ, R):  # noqa: N803
    return Sample("random", _unmerge_sample(rng, NB, NJ, R, spread=float(rng.choice([0.1, 0.5]))))


def _unmerge_edges():
    rng = np.random.default_rng(15371)
    W = rng.standard_normal((4, 6))
    conditioned = np.diag([1.0, 1e-3]) - np.eye(2)  # I + B_0 = diag(1, 1e-3)
    rotation = np.array([[0.6, -0.8], [0.8, 0.6]])
    ill = np.stack([rotation @ (conditioned + np.eye(2)) @ rotation.T - np.eye(2), np.zeros((2, 2))])
    negative = -3.0 * np.eye(2) + 0.1 * rng.standard_normal((2, 2, 2))
    return [
        Sample("B = 0", (W, np.zeros((2, 2, 2))), flags=("ZERO_B",)),
        Sample("non-square (4, 6), r = 2", _unmerge_sample(rng, 2, 3, 2), flags=("NON_SQUARE",)),
        Sample("non-square (9, 3), r = 3", _unmerge_sample(rng, 3, 1, 3), flags=("NON_SQUARE",)),
        Sample("r = 1 on (3, 4)", _unmerge_sample(rng, 3, 4, 1), flags=("SCALAR_BLOCKS",)),
        Sample("I + B_0 with condition number 1e3", (_merged(W, ill), ill), flags=("ILL_CONDITIONED",)),
        Sample("B_a = −3I + noise", (_merged(W, negative), negative), flags=("NEGATIVE_DEFINITE",)),
    ]


def _unmerge_errors():
    singular = np.zeros((2, 2, 2))
    singular[1] = [[0.0, 1.0], [0.0, -1.0]]  # I + B_1 = [[1, 1], [0, 0]]
    return [
        ErrorCase(
            "I + B_0 = 0", (np.ones((4, 4)), -np.stack([np.eye(2)] * 2)), match=r"'B'.*I \+ B_0 singular"
        ),
        ErrorCase("I + B_1 of rank 1", (np.ones((4, 4)), singular), match=r"'B'.*I \+ B_1 singular"),
        ErrorCase("in % r ≠ 0", (np.ones((4, 5)), np.zeros((2, 2, 2))), match=r"'W_merged'.*in % r = 0"),
        ErrorCase("B has 1 row-block for out/r = 2", (np.ones((4, 4)), np.zeros((1, 2, 2))), match=r"'B'"),
    ]


register(
    OpCases(
        "bone_unmerge",
        dims={"NB": (1, 3), "NJ": (1, 3), "R": (1, 3)},
        random=_unmerge_random,
        edges=_unmerge_edges,
        errors=_unmerge_errors,
        notes=UNMERGE_NOTES,
        defaults={},
    )
)


# -- miss_shared_block ---------------------------------------------------------------------------
def _miss_layer(rng, T, I, O, R, batch=None):  # noqa: N803
    x = rng.standard_normal((T, I) if batch is None else (*batch, I))
    W = rng.standard_normal((O, I)) / np.sqrt(I)
    B = rng.standard_normal((R, O)) / np.sqrt(R)
    bias = rng.standard_normal(O)
    return x, W, B, bias


def _miss_random(rng, T, I, O, R):  # noqa: N803
    x, W, B, bias = _miss_layer(rng, T, I, O, R)
    return Sample("random", (x, W, B, bias) if rng.random() < 0.5 else (x, W, B))


def _miss_edges():
    rng = np.random.default_rng(64)
    x, W, B, bias = _miss_layer(rng, 3, 7, 4, 3)
    return [
        Sample("B = 0, with bias", (x, W, np.zeros_like(B), bias), flags=("ZERO_B",)),
        Sample("in = 7, r = 3 (two padded zeros)", (x, W, B, bias), flags=("PADDING",)),
        Sample("in = 3, r = 5", _miss_layer(rng, 2, 3, 4, 5), flags=("R_ABOVE_IN", "PADDING")),
        Sample("r = 1", _miss_layer(rng, 3, 5, 2, 1)[:3], flags=("R_ONE", "NO_BIAS")),
        Sample("r = in = 4", _miss_layer(rng, 3, 4, 6, 4), flags=("R_EQUALS_IN",)),
        Sample(
            "batch dims (2, 3, in), in = 8, r = 4",
            _miss_layer(rng, 0, 8, 5, 4, batch=(2, 3)),
            flags=("BATCH_DIMS",),
        ),
        Sample(
            "single input vector (in,), in = 5, r = 2",
            _miss_layer(rng, 0, 5, 3, 2, batch=())[:3],
            flags=("SINGLE_VECTOR", "PADDING"),
        ),
    ]


def _peft_miss_torch(torch, args, kwargs, cotangent):
    """peft's MiSS forward: base F.linear plus the padded fold times the shard (and autograd)."""
    x, W, B, bias = (torch.from_numpy(a) if a is not None else None for a in (*args, None)[:4])
    x.requires_grad_(), B.requires_grad_()
    g_y = torch.from_numpy(cotangent)
    r = B.shape[0]
    padding = -x.shape[-1] % r

    def step():
        padded = torch.nn.functional.pad(x, (0, padding))
        folded = torch.sum(padded.reshape(*padded.shape[:-1], padded.shape[-1] // r, r), dim=-2)
        y = torch.nn.functional.linear(x, W, bias) + folded @ B
        x.grad = B.grad = None
        y.backward(g_y)
        return y

    return step


def _miss_blas(args, kwargs):
    """Forward x Wᵀ and s B; backward Sᵀ g, g Bᵀ and g W (S: the folded inputs, (T, r))."""
    x, W, B = args[0], args[1], args[2]
    x_rows = x.reshape(-1, W.shape[1])
    g_rows = np.ones((x_rows.shape[0], W.shape[0]), dtype=x.dtype)
    s_rows = np.ones((x_rows.shape[0], B.shape[0]), dtype=x.dtype)

    def step():
        x_rows @ W.T
        s_rows @ B
        s_rows.T @ g_rows
        g_rows @ B.T
        g_rows @ W

    return step


register(
    OpCases(
        "miss_shared_block",
        dims={"T": (1, 5), "I": (1, 9), "O": (1, 6), "R": (1, 4)},
        random=_miss_random,
        edges=_miss_edges,
        notes=MISS_NOTES,
        defaults={"bias": None},
        bench=Bench(
            sizes={"T": "rows", "I": "cols", "O": "cols", "R": 64},
            torch=_peft_miss_torch,
            torch_label="peft's MiSS forward: F.linear plus the F.pad/reshape/sum fold times B (autograd)",
            blas=_miss_blas,
        ),
    )
)
