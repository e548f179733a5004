"""The pipeline scaling -> PCA -> classifier on scikit-learn's 8x8 digits, with seeds as data splits."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler
from sklearn.svm import SVC

from ablate.errors import AblateError
from ablate.method import Method, Outcome, Preset, Request, Switches, switch, switches_of


@dataclass(frozen=True)
class PipelineSwitches:
    """Every component a study may switch: declared once, each with its type, default, range and help."""

    scaler: str = switch("standard", "Feature scaling.", choices=("standard", "minmax", "none"))
    pca: int = switch(32, "PCA components (0: no PCA).", low=0, high=64)
    classifier: str = switch("logreg", "The classifier.", choices=("logreg", "svm"))
    C: float = switch(1.0, "Inverse regularisation strength of the classifier.", low=0.0, low_open=True, option="--C")


class DigitsPipeline(Method):
    """Cases: the clean digits and digits with pixel noise. Variants: the whole pipeline (the reference, which
    studies tune) and the classifier on raw pixels (the baseline: no scaling, no PCA)."""

    name = "digits"
    tables = ("table",)
    version = "0.1.0"
    title = "Digits pipeline"
    description = "scikit-learn pipeline (scaling, PCA, classifier) on the 8x8 digits"
    cases = ("clean", "noisy")
    variants = ("pipeline", "raw")
    reference = "pipeline"
    baseline = "raw"
    case_help = "clean digits, or noisy (Gaussian pixel noise, SD 4 of 16 grey levels)."
    variant_help = "pipeline (scaling, PCA, classifier) or raw (the classifier on raw pixels)."

    def switches(self) -> Switches:
        return Switches(switches_of(PipelineSwitches))

    def definitions(self) -> Any:
        return resources.files("ablate_digits.studies")

    def preset(self, name: str, values: Mapping[str, Any]) -> Preset:
        unknown = set(values) - {"max_train", "max_iter", "switches"}
        if unknown:
            raise AblateError(f"unknown key(s) {', '.join(sorted(unknown))}")
        for key in ("max_train", "max_iter"):
            if not isinstance(values.get(key), int) or values[key] < 1:
                raise AblateError(f"{key} must be an integer >= 1")
        return super().preset(name, values)

    def canonical(self, variant: str, switches: Mapping[str, Any]) -> dict[str, Any]:
        """The raw baseline ignores scaling and PCA: settings that differ only there are one model."""
        out = dict(switches)
        if variant == "raw":
            out.update(scaler="none", pca=0)
        return out

    def run_one(self, request: Request, *, log: Callable[..., Any] = print) -> Outcome:
        started = time.perf_counter()
        s = self.canonical(request.variant, request.switches)
        x, y = load_digits(return_X_y=True)
        rng = np.random.default_rng(request.seed)
        if request.case == "noisy":
            x = np.clip(x + rng.normal(0.0, 4.0, size=x.shape), 0.0, 16.0)
        # the seed is the split: 60 % train, 20 % validation (what studies optimise), 20 % test (what reports show)
        x_train, x_rest, y_train, y_rest = train_test_split(x, y, train_size=0.6, random_state=request.seed, stratify=y)
        x_val, x_test, y_val, y_test = train_test_split(
            x_rest, y_rest, test_size=0.5, random_state=request.seed, stratify=y_rest
        )
        n = request.preset.values["max_train"]
        x_train, y_train = x_train[:n], y_train[:n]
        steps: list[Any] = []
        if s["scaler"] != "none":
            steps.append(StandardScaler() if s["scaler"] == "standard" else MinMaxScaler())
        if s["pca"]:
            steps.append(PCA(n_components=min(s["pca"], len(x_train)), svd_solver="full"))
        max_iter = request.preset.values["max_iter"]
        if s["classifier"] == "logreg":
            steps.append(LogisticRegression(C=s["C"], max_iter=max_iter))
        else:
            steps.append(SVC(C=s["C"], max_iter=max_iter))
        model = make_pipeline(*steps)
        fit_started = time.perf_counter()
        model.fit(x_train, y_train)
        fitted = time.perf_counter()
        val_correct = int((model.predict(x_val) == y_val).sum())
        test_correct = int((model.predict(x_test) == y_test).sum())
        done = time.perf_counter()
        return Outcome(
            seed=request.seed,
            val_accuracy=val_correct / len(y_val),
            test_accuracy=test_correct / len(y_test),
            n_val=len(y_val),
            n_test=len(y_test),
            seconds=done - started,
            stages={"fit": fitted - fit_started, "predict": done - fitted},
            diagnostics={"train_examples": len(y_train)},
        )
