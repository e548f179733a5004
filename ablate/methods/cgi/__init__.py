"""CGI as an :class:`ablate.method.Method`: the adapter between ``crossgen`` and the rest of ablate.

Registered from ablate's own pyproject (``[project.entry-points."ablate.methods"] cgi = ...``), found like any
other method. ``bench`` (``ablate bench``) and ``commands`` (``ablate data``) are CGI's own commands.
"""

from ablate.methods.cgi.method import CGIMethod

__all__ = ["CGIMethod"]
