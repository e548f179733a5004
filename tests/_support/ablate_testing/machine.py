"""Which BLAS kernels this machine runs: golden numbers are bit-for-bit only on the kernels they were recorded on.

torch picks its CPU kernels by instruction set (``get_cpu_capability``: AVX2, AVX512, ...), and they sum in
different orders, so a run reproduces to the last bit on the same (torch, capability, vendor) only: on an AVX2
machine one of the 40 smoke runs of Table 2 differs from the AVX-512 golden by one test image.
"""

from __future__ import annotations

from pathlib import Path

import torch


def machine() -> tuple[str, str, str]:
    """(torch version, CPU capability, CPU vendor)."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        info = ""
    vendor = next((ln.split(":")[1].strip() for ln in info.splitlines() if ln.startswith("vendor_id")), "")
    return torch.__version__, torch.backends.cpu.get_cpu_capability(), vendor
