"""Conformance cases for `normgrad_saliency`."""

from __future__ import annotations

import numpy as np

from refimpl.other.normgrad import conv_output_size

from ..._cases import Bench, ErrorCase, Known, OpCases, Sample, register

NOTES = {
    "ZERO_GRAD": "∇x = 0 at some locations: saliency 0 there (no 0·inf, no division)",
    "SELECTIVE_NEGATIVE": "x ⊙ ∇x ≤ 0 everywhere: the selective map is exactly 0",
    "CONV_K1": "conv with k = 1, s = 1, pad = 0: equals the identity map of (a, g)",
    "CONV_PADDING": "padding and stride 2: border patches read zeros; a kernel without the padding "
    "or with the wrong window start disagrees on the border",
    "CONV_DILATION": "dilation 2: the patch reads every other pixel",
    "ONE_CHANNEL": "C = 1: the norm is |x|",
}


def _random(rng, B, C, H, W):  # noqa: N803
    variant = str(rng.choice(["identity", "selective", "conv", "conv"]))  # conv has the most options
    x = rng.standard_normal((B, C, H, W)) * float(rng.choice([0.1, 1.0, 5.0]))
    if variant != "conv":
        grad = rng.standard_normal((B, C, H, W)) * float(rng.choice([0.01, 1.0]))
        return Sample("random", (x, grad), {"variant": variant})
    stride, padding = int(rng.integers(1, 3)), int(rng.integers(0, 2))
    dilation = int(rng.choice([1, 2]))
    # the dilated kernel d(k - 1) + 1 must fit the padded image
    largest = min((min(H, W) + 2 * padding - 1) // dilation + 1, min(H, W))
    kernel_size = int(rng.integers(1, largest + 1))
    out_h, out_w = (conv_output_size(n, kernel_size, stride, padding, dilation) for n in (H, W))
    grad = rng.standard_normal((B, int(rng.integers(1, 4)), out_h, out_w))
    kwargs = {
        "variant": "conv",
        "kernel_size": kernel_size,
        "stride": stride,
        "padding": padding,
        "dilation": dilation,
    }
    return Sample("random", (x, grad), kwargs)


def _edges():
    rng = np.random.default_rng(151)
    x = rng.standard_normal((2, 3, 5, 4))
    grad = rng.standard_normal((2, 3, 5, 4))
    grad_some_zero = grad.copy()
    grad_some_zero[:, :, 1:3, 2] = 0.0
    a = rng.standard_normal((1, 2, 7, 6))
    return [
        Sample("∇x = 0 at some locations", (x, grad_some_zero), flags=("ZERO_GRAD",)),
        Sample(
            "selective, x ⊙ ∇x ≤ 0",
            (np.abs(x), -np.abs(grad)),
            {"variant": "selective"},
            flags=("SELECTIVE_NEGATIVE",),
        ),
        Sample("conv, 1×1", (x, rng.standard_normal((2, 4, 5, 4))), {"variant": "conv"}, flags=("CONV_K1",)),
        Sample(
            "conv 3×3, stride 2, padding 1",
            (a, rng.standard_normal((1, 3, 4, 3))),
            {"variant": "conv", "kernel_size": 3, "stride": 2, "padding": 1},
            flags=("CONV_PADDING",),
        ),
        Sample(
            "conv 2×2, dilation 2",
            (a, rng.standard_normal((1, 2, 5, 4))),
            {"variant": "conv", "kernel_size": 2, "dilation": 2},
            flags=("CONV_DILATION",),
        ),
        Sample("one channel", (x[:, :1], grad[:, :1]), flags=("ONE_CHANNEL",)),
    ]


def _errors():
    x = np.ones((1, 2, 4, 4))
    return [
        ErrorCase("identity with a gradient of another shape", (x, np.ones((1, 3, 4, 4))), match="x's shape"),
        ErrorCase(
            "conv with the wrong output size",
            (x, np.ones((1, 3, 4, 4))),
            {"variant": "conv", "kernel_size": 3},
            match="gradient of the layer's output",
        ),
        ErrorCase(
            "kernel larger than the input",
            (x, np.ones((1, 3, 1, 1))),
            {"variant": "conv", "kernel_size": 5},
            match="fits the padded input",
        ),
    ]


def _known():
    a = np.arange(1.0, 5.0).reshape(1, 1, 2, 2)  # [[1, 2], [3, 4]]
    return [
        Known(
            "identity at one location",
            (np.array([3.0, 4.0]).reshape(1, 2, 1, 1), np.array([0.0, -2.0]).reshape(1, 2, 1, 1)),
            values={"saliency": [[[[10.0]]]]},
            source="by hand: ‖(3, 4)‖·‖(0, −2)‖ = 5·2",
            rtol=1e-15,
        ),
        Known(
            "selective at one location",
            (np.array([3.0, 4.0]).reshape(1, 2, 1, 1), np.array([-1.0, 1.0]).reshape(1, 2, 1, 1)),
            {"variant": "selective"},
            values={"saliency": [[[[4.0]]]]},
            source="by hand: max((−3, 4), 0) = (0, 4), norm 4",
            rtol=1e-15,
        ),
        Known(
            "conv 2×2 with padding 1 on a 2×2 input",
            (a, np.full((1, 1, 3, 3), 2.0)),
            {"variant": "conv", "kernel_size": 2, "padding": 1},
            values={"saliency": 2.0 * np.sqrt([[[[1, 5, 4], [10, 30, 20], [9, 25, 16]]]])},
            source="by hand: each output reads the zero-padded 2×2 window; Σ a² over it (centre 1+4+9+16)",
            rtol=1e-14,
        ),
    ]


def _bench_sample(rng, rows, cols):
    """A conv layer's activation and its gradient: B = rows/256 samples, 256 channels,
    √cols × √cols locations (8192 × 1024: 32 × 256 × 32 × 32, 8.4M elements each)."""
    side = max(int(np.sqrt(cols)), 1)
    shape = (max(rows // 256, 1), 256, side, side)
    return Sample("bench", (rng.standard_normal(shape), rng.standard_normal(shape)))


def _normgrad_torch(torch, args, kwargs, cotangent):
    """TorchRay's gradient_to_norm_grad_saliency: norm(∇x, 2, 1, keepdim) · norm(x, 2, 1, keepdim)."""
    x, grad = (torch.from_numpy(a) for a in args)

    @torch.no_grad()
    def step():
        return torch.norm(grad, 2, 1, keepdim=True) * torch.norm(x, 2, 1, keepdim=True)

    return step


register(
    OpCases(
        "normgrad_saliency",
        dims={"B": (1, 3), "C": (1, 4), "H": (1, 6), "W": (1, 6)},
        random=_random,
        edges=_edges,
        errors=_errors,
        notes=NOTES,
        known=_known,
        defaults={"variant": "identity", "kernel_size": 1, "stride": 1, "padding": 0, "dilation": 1},
        bench=Bench(
            make=_bench_sample,
            torch=_normgrad_torch,
            torch_label="TorchRay's NormGrad map (torch.norm over channels, no gradient: a saliency map)",
        ),
    )
)
