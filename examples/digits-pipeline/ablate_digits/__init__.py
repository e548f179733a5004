"""An example method for ablate: which parts of a scikit-learn pipeline matter on the digits data?

Copy this folder to ablate your own method: declare the switches, the cases and the variants, point at a
definitions folder, and write ``run_one``. See docs/methods.md.
"""

from ablate_digits.method import DigitsPipeline

__all__ = ["DigitsPipeline"]
