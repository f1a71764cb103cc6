"""Conformance cases for `l_orth`."""

from __future__ import annotations

import numpy as np

from ..._cases import ErrorCase, Known, OpCases, Sample, register

NOTES = {
    "ORTHOGONAL": "an orthogonal convolution: L = 0 (achour) at a minimum, zero gradient",
    "WANG_STRIDE2": "wang2020 at S = 2: lags {−1, +1}, the identity lands on lag +1 (‖Y − I‖ = √M here)",
    "COLUMN_ORTHOGONAL": "M > S²C: δ = M − S²C is subtracted; orthonormal columns give L = 0",
    "ASYMMETRIC_LAGS": "wang2020 at S >= 3: the only lag is −1, Y[m, m', a] ≠ Y[m', m, −a]; the "
    "symmetric shortcut 4·Σ R K of the catalog is wrong here",
    "STRIDE_ABOVE_K": "S > k: P = 0, one lag (0): L = ‖K Kᵀ − I‖² − δ over the flattened filters",
    "WANG_KINK": "wang2020 at R = 0: ‖R‖ has a kink, the gradient is taken as 0",
}


def _random(rng, M, C, k):
    size = 2 * k - 1  # odd: 1, 3, 5
    kernel = rng.standard_normal((M, C, size, size)) / np.sqrt(C * size * size)
    kwargs = {"stride": int(rng.integers(1, 4)), "variant": str(rng.choice(["achour", "wang2020"]))}
    return Sample("random", (kernel,), kwargs)


def _orthogonal(n, seed):
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((n, n)))
    return q


def _edges():
    rng = np.random.default_rng(28)
    centre = np.zeros((4, 4, 3, 3))
    centre[:, :, 1, 1] = _orthogonal(4, 1)
    one_by_one = _orthogonal(3, 2)[:, :, None, None]
    signed_permutation = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])[:, :, None, None]
    columns = _orthogonal(5, 3)[:, :2, None, None]  # M = 5 > C = 2, orthonormal columns
    near = centre + 0.05 * rng.standard_normal(centre.shape)
    return [
        Sample(
            "3×3 stride 2, orthogonal centre tap",
            (centre,),
            {"stride": 2},
            flags=("ORTHOGONAL",),
            comment="L = 0: the catalog's known value",
        ),
        Sample(
            "3×3 stride 2, orthogonal centre tap, wang2020",
            (centre,),
            {"stride": 2, "variant": "wang2020"},
            flags=("WANG_STRIDE2",),
            comment="L = 2.0 = √M",
        ),
        Sample("1×1 orthogonal", (one_by_one,), {"stride": 1}, flags=("ORTHOGONAL",)),
        Sample(
            "1×1 signed permutation, wang2020",
            (signed_permutation,),
            {"stride": 1, "variant": "wang2020"},
            flags=("WANG_KINK",),
            fd=False,
            comment="R = 0 exactly in both dtypes (a rotation would leave rounding noise whose "
            "direction R/‖R‖ is arbitrary): a kink of the non-squared norm",
        ),
        Sample(
            "1×1, orthonormal columns, M > C",
            (columns,),
            {"stride": 1},
            flags=("COLUMN_ORTHOGONAL",),
            comment="‖KKᵀ − I‖² = M − C = 3 = δ, L = 0",
        ),
        Sample("near-orthogonal, stride 2", (near,), {"stride": 2}),
        Sample("near-orthogonal, stride 1, wang2020", (near,), {"stride": 1, "variant": "wang2020"}),
        Sample(
            "5×5 stride 3, wang2020",
            (rng.standard_normal((3, 2, 5, 5)) * 0.2,),
            {"stride": 3, "variant": "wang2020"},
            flags=("ASYMMETRIC_LAGS",),
        ),
        Sample("5×5 stride 3", (rng.standard_normal((3, 2, 5, 5)) * 0.2,), {"stride": 3}),
        Sample(
            "3×3 stride 4",
            (rng.standard_normal((6, 1, 3, 3)) * 0.3,),
            {"stride": 4},
            flags=("STRIDE_ABOVE_K",),
            comment="M = 6 <= S²C = 16: δ = 0",
        ),
        Sample(
            "3×3 stride 2, column-orthogonal regime",
            (rng.standard_normal((6, 1, 3, 3)) * 0.3,),
            {"stride": 2},
            flags=("COLUMN_ORTHOGONAL",),
            comment="M = 6 > S²C = 4: δ = 2",
        ),
    ]


def _errors():
    return [
        ErrorCase("even kernel size", (np.zeros((2, 2, 2, 2)),), match=r"'kernel'.*odd"),
    ]


def _known():
    # the catalog's known values: a 3×3, stride-2 kernel whose centre tap is an orthogonal 4×4
    Q, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((4, 4)))
    kernel = np.zeros((4, 4, 3, 3))
    kernel[:, :, 1, 1] = Q
    return [
        Known(
            "catalog: orthogonal centre tap, stride 2 (achour)",
            (kernel,),
            {"stride": 2},
            values={"loss": 0.0},
            source="the catalog (an orthogonal convolution: L = 0)",
            atol=1e-12,
        ),
        Known(
            "catalog: orthogonal centre tap, stride 2 (wang2020)",
            (kernel,),
            {"stride": 2, "variant": "wang2020"},
            values={"loss": 2.0},
            source="the catalog (‖Y − I‖ = √M = 2: the identity lands on lag +1)",
            rtol=1e-12,
        ),
    ]


register(
    OpCases(
        "l_orth",
        dims={"M": (1, 5), "C": (1, 4), "k": (1, 3)},
        random=_random,
        edges=_edges,
        known=_known,
        errors=_errors,
        notes=NOTES,
    )
)
