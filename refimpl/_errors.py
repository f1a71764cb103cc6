"""The exceptions refimpl raises."""

from __future__ import annotations

__all__ = [
    "InputError",
    "NotDifferentiableError",
    "UnknownOpError",
    "UnsupportedOpError",
]


class InputError(ValueError):
    """An op was given an argument outside its contract (shape, dtype, value domain).

    Raised by the op layer before any backend runs, so every backend rejects the same
    inputs with the same message. The message names the op, the argument, what was
    expected and what was given.
    """


class RangeError(InputError):
    """Finite inputs gave a NaN or an infinite result: at those magnitudes an intermediate or
    the result itself exceeds the dtype's range (float32 squares overflow past ~1.8e19). The
    message names the output and the largest input magnitudes; rescale or use float64."""


class UnknownOpError(KeyError):
    """No op of that name is in the catalog."""

    def __str__(self) -> str:  # KeyError quotes its argument; show the message as written
        return str(self.args[0]) if self.args else ""


class UnsupportedOpError(LookupError):
    """A backend was asked for an op it does not implement (it never falls back silently)."""


class NotDifferentiableError(TypeError):
    """`vjp` was asked for an op that has no differentiable inputs."""
