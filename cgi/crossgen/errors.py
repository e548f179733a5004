"""Exceptions that carry a one-line, user-facing message.

The CLI turns every subclass of :class:`CrossgenError` into ``error: <message>`` and exit status 2, so the
message must name the offending field or file and, where there is one, the fix.
"""


class CrossgenError(Exception):
    """Base class for errors caused by the caller's input, not by a bug."""


class ConfigError(CrossgenError, ValueError):
    """An invalid configuration value (the message names the field)."""


class DataError(CrossgenError):
    """A missing, truncated, tampered or unreadable data file (the message names the file and the fix)."""
