"""The public method API: declare a method once and every ``ablate`` command studies it (docs/methods.md).

>>> from ablate.method import Method, Outcome, Preset, Request, Switches, switch, switches_of
"""

from ablate.method.api import EpochHook, Method, Outcome, Preset, Request
from ablate.method.contract import check_method
from ablate.method.discovery import GROUP, available, load_method
from ablate.method.switches import Switch, SwitchError, Switches, switch, switches_of

__all__ = [
    "GROUP",
    "EpochHook",
    "Method",
    "Outcome",
    "Preset",
    "Request",
    "Switch",
    "SwitchError",
    "Switches",
    "available",
    "check_method",
    "load_method",
    "switch",
    "switches_of",
]
