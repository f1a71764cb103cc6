"""The conformance suite over every installed backend (numpy, numba, cupy or cupy[host])."""

from refimpl_conformance.suite import *  # noqa: F403 - collects the suite's tests here
