"""Independent, named random streams derived from one run seed.

Each stage (model init, minibatch order, sampling noise, bootstrap, generator fit) draws from its own
stream, so switching a CGI component on or off never shifts the random numbers of another stage. The
no-transfer benchmark and a transfer technique with the same seed therefore share the target's
initialisation and minibatch order: their paired difference measures the technique, not the dice.
"""

from __future__ import annotations

import zlib

import numpy as np
import torch


def stream_seed(seed: int, stream: str) -> int:
    """A 63-bit seed for ``stream``, a pure function of (seed, stream name)."""
    key = zlib.crc32(stream.encode())
    return int(np.random.SeedSequence([seed, key]).generate_state(2, dtype=np.uint64)[0] >> np.uint64(1))


def torch_generator(seed: int, stream: str, device: str = "cpu") -> torch.Generator:
    return torch.Generator(device=device).manual_seed(stream_seed(seed, stream))


def numpy_generator(seed: int, stream: str) -> np.random.Generator:
    return np.random.default_rng(stream_seed(seed, stream))
