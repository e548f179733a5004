"""``python -m ablate.cli``: the same as the ``ablate`` command.

Why more than ``main()``: CPython marks a KeyboardInterrupt that ends a *string* ``exec``/``eval`` (the generated
methods of a dataclass or a namedtuple, for one) as unhandled even when it is caught, and under ``python -m`` it
then ends the process by SIGINT (exit -2) instead of with the 130 the command chose; the ``ablate`` script takes
another path and is not affected. A Ctrl-C or SIGTERM that lands in such code did that about once in 15 times.
Evaluating one string on the way out clears the mark (it is reset at the start of every string evaluation).
"""

from ablate.cli import main

try:
    main()
finally:
    exec("pass", {})  # noqa: S102 - a constant: clears CPython's stale "unhandled KeyboardInterrupt" mark
