"""The built-in study definitions (the TOML files here), installed as the package ``ablate_studies``.

This file only makes the folder a regular package: Python 3.11's ``importlib.resources`` cannot read a namespace
package from an editable install. ``ablate.experiment.presets`` reads the files; ``runs/`` is output and is not shipped.
"""
