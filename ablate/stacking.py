"""When the runs of a trial (seeds, design points) train as stacked replicas (crossgen.stack).

``--stack auto|on|off`` on every command that runs a study. ``on`` and ``off`` are what they say; ``auto``
stacks where it was measured to pay (docs/benchmarks.md, ``ablate bench``'s
``stacked_over_unstacked_per_run``):

* on a GPU always: one step of our BNNs is a few small kernels, so launch overhead sets the pace and a
  stack of R replicas costs about what one does;
* on a CPU only up to :data:`AUTO_CPU_MAX_WIDTH` hidden units: at width 100 (quick) a 6-seed stack ran
  1.88x faster per run than the same runs one by one, at width 200 0.89x (slower: the batched matmuls
  no longer win over R plain ones on a CPU, while the stack's bookkeeping still costs).

The decision goes into the study's provenance (``stacking``), so a report says how its numbers were made.
Stacking changes rounding, never the runs' random streams: docs/benchmarks.md shows the equivalence study.
"""

from __future__ import annotations

import math

STACK_MODES: tuple[str, ...] = ("auto", "on", "off")
AUTO_CPU_MAX_WIDTH = 100
MAX_BATCH = 64
"""The most design points one worker claims at once (the queue stays shared between workers)."""


def resolve(mode: str, device: str, width: int) -> bool:
    """Whether runs stack, for ``--stack mode`` on ``device`` at hidden width ``width``."""
    if mode not in STACK_MODES:
        raise ValueError(f"--stack {mode!r} is not one of {', '.join(STACK_MODES)}")
    if mode != "auto":
        return mode == "on"
    return device.startswith("cuda") or width <= AUTO_CPU_MAX_WIDTH


def why(mode: str, device: str, width: int) -> str:
    """The decision in words, for provenance and logs."""
    stacked = resolve(mode, device, width)
    if mode != "auto":
        return f"{'stacked' if stacked else 'unstacked'} (--stack {mode})"
    if device.startswith("cuda"):
        return "stacked (--stack auto: on a GPU)"
    if stacked:
        return f"stacked (--stack auto: CPU, width {width} <= {AUTO_CPU_MAX_WIDTH})"
    return f"unstacked (--stack auto: CPU, width {width} > {AUTO_CPU_MAX_WIDTH}, where stacking was measured slower)"


def batch_size(total: int, workers: int) -> int:
    """How many queued design points one worker claims at once: an even share of the study, at most
    :data:`MAX_BATCH`, so that every worker gets work and no worker holds the whole queue."""
    return max(1, min(MAX_BATCH, math.ceil(total / max(1, workers))))
