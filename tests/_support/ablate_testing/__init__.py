"""Helpers shared by the test modules, under one name of their own.

``tests/_support`` is on pytest's ``pythonpath``; the helpers live in this package inside it, so a test
imports ``from ablate_testing.servers import require_server`` and no helper can shadow, or be shadowed by,
an installed top-level module.
"""
