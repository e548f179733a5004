"""When the runs of a trial (seeds, design points) train as stacked replicas (crossgen.stack).

``--stack auto|on|off`` on every command that runs a study. ``on`` and ``off`` are what they say; ``auto``
stacks where it was measured to pay (docs/benchmarks.md, ``ablate bench``'s ``stacked_over_unstacked_per_run``):
on a GPU, and only there. There one step of our BNNs is a few small kernels, so launch overhead sets the pace
and a stack of R replicas costs about what one does (a 10-seed design point: 5.9x faster per run at quick
fidelity, 7.2x at paper fidelity, on an H200). On this project's 2-core CPU the same design point ran 1.05x
and 1.23x faster per run (two cases; BNN-only stacks up to 1.9x at width 100, 0.9x at width 200): too little
to leave the bit-for-bit reference path by default, so a CPU user asks for it with ``--stack on``.

The decision goes into the study's provenance (``stacking``), so a report says how its numbers were made.
Stacking changes rounding, never the runs' random streams: docs/benchmarks.md shows the equivalence study.
"""

from __future__ import annotations

import math

from ablate.method import Method

STACK_MODES: tuple[str, ...] = ("auto", "on", "off")
MAX_BATCH = 64
"""The most design points one worker claims at once (the queue stays shared between workers)."""


def resolve(mode: str, device: str, method: Method) -> bool:
    """Whether runs stack, for ``--stack mode`` on ``device`` (``auto``: where the method says it pays)."""
    if mode not in STACK_MODES:
        raise ValueError(f"--stack {mode!r} is not one of {', '.join(STACK_MODES)}")
    if mode != "auto":
        return mode == "on"
    return method.stacks(device)


def why(mode: str, device: str, method: Method) -> str:
    """The decision in words, for provenance and logs."""
    stacked = resolve(mode, device, method)
    if mode != "auto":
        return f"{'stacked' if stacked else 'unstacked'} (--stack {mode})"
    if stacked:
        return "stacked (--stack auto: on a GPU)" if device.startswith("cuda") else f"stacked (--stack auto: {device})"
    if device.startswith("cuda"):
        return f"unstacked (--stack auto: {method.name} does not stack on {device})"
    return "unstacked (--stack auto: a CPU, where stacking was measured to gain too little to leave the reference)"


def batch_size(total: int, workers: int) -> int:
    """How many queued design points one worker claims at once: an even share of the study, at most
    :data:`MAX_BATCH`, so that every worker gets work and no worker holds the whole queue."""
    return max(1, min(MAX_BATCH, math.ceil(total / max(1, workers))))
