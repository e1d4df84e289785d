"""A tiny counter-free PRNG (SplitMix64) for the numba kernels.

Why not numba's `np.random`: its state is hidden and process-global, so another numba user between two chunks
(or a second simulation in the same process) would silently change the stream. Here the state is one uint64 in
an array the caller owns, which makes every run byte-for-byte reproducible and resumable chunk by chunk.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S11 = np.uint64(11)
_INV53 = 1.0 / 9007199254740992.0  # 2**-53


def new_state(seed: int, stream: int = 0) -> np.ndarray:
    """A fresh state array for (`seed`, `stream`); distinct streams are independent for practical purposes."""
    mixed = (int(seed) * 0x9E3779B97F4A7C15 + int(stream) * 0xD1B54A32D192ED03 + 0x632BE59BD9B4E019) % (1 << 64)
    state = np.array([mixed], dtype=np.uint64)
    for _ in range(4):  # decorrelate nearby seeds
        next_u64(state)
    return state


@njit(cache=True)
def next_u64(state):
    z = state[0] + _GOLDEN
    state[0] = z
    z = (z ^ (z >> _S30)) * _MIX1
    z = (z ^ (z >> _S27)) * _MIX2
    return z ^ (z >> _S31)


@njit(cache=True)
def uniform(state) -> float:
    """Uniform in (0, 1): never exactly 0, so `log(uniform)` is always finite."""
    return (float(next_u64(state) >> _S11) + 0.5) * _INV53


@njit(cache=True)
def normal(state) -> float:
    """Standard normal (Box-Muller, one of the pair)."""
    return math.sqrt(-2.0 * math.log(uniform(state))) * math.cos(6.283185307179586 * uniform(state))


@njit(cache=True)
def exponential(state) -> float:
    return -math.log(uniform(state))


@njit(cache=True)
def poisson_small(state, mean: float) -> int:
    """Poisson by inversion; fine for the small per-millisecond means the kernel uses (< ~20)."""
    if mean <= 0.0:
        return 0
    u = uniform(state)
    p = math.exp(-mean)
    cum = p
    k = 0
    while u > cum and k < 1000:
        k += 1
        p *= mean / k
        cum += p
    return k
