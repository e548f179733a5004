"""Methods that ship with ablate, each an adapter of its own library to :mod:`ablate.method`.

``cgi``: Cross Generative Initialisation (the ``crossgen`` library). The only place in ``ablate`` that imports
``crossgen`` (tests/ablate/test_layers.py holds it).
"""
