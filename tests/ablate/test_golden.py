"""No result changes: the refactored code reproduces the numbers saved before the refactor (issue 10).

``tests/ablate/golden/TORCH-CAPABILITY-VENDOR/`` holds the per-run CSVs and report JSONs written by the
pre-refactor code (91163d2) for ``ablate reproduce table2 --seeds 5 --fidelity smoke`` and a 3-seed OFAT
ablation of T2M2_T1M1 at smoke fidelity, one folder per kind of CPU kernels they were recorded on (see
``ablate_testing/machine.py``: AVX2 and AVX-512 differ in one run of the 40). Every run's validation and test
accuracy must match (CPU runs are bit-for-bit reproducible on the same kernels), and so must the descriptive
table of each report. On kernels with no folder the tests skip and say how to record one: run the two commands
below with the pre-refactor commit's code and copy the four files. p-values are not compared: the exact
sign-flip test now counts ties exactly (issue 15) and identical variants are merged before Holm
(both deliberate changes). The commands run with ``--stack off``: the unstacked path is the bit-for-bit
reference; stacked replicas round differently (crossgen.stack, docs/benchmarks.md's equivalence study).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from ablate_testing.machine import machine

GOLDEN = Path(__file__).parent / "golden" / "-".join(machine())

pytestmark = pytest.mark.skipif(
    not GOLDEN.is_dir(), reason=f"no golden outputs recorded on these CPU kernels ({GOLDEN.name}): see this module"
)
KEY = ["case", "variant", "seed"]


def _runs(path: Path) -> pd.DataFrame:
    df = pd.read_csv(path)
    return df[[*KEY, "val_accuracy", "test_accuracy", *(c for c in ("n_val", "n_test") if c in df)]]


def _aliases(variant: str) -> list[str]:
    return [v.strip() for v in variant.split("≡")]


def _compare_runs(new: pd.DataFrame, old: pd.DataFrame) -> None:
    # a merged variant ("generator=gaussian ≡ K=1") stands for every label it merged
    new = new.assign(variant=new["variant"].map(_aliases)).explode("variant")
    merged = old.merge(new, on=KEY, how="left", suffixes=("_old", "_new"), validate="one_to_one")
    missing = merged[merged["val_accuracy_new"].isna()]
    assert missing.empty, f"runs missing after the refactor:\n{missing[KEY]}"
    # The golden files hold torch's float32 accuracies (record schema 2: 0.9411764740943909 for 272/289); since
    # schema 3 a run stores the exact fraction (0.9411764705882353). The numbers are the same when the counts
    # of correct examples are, which is what is compared; the representations differ by less than float32's
    # resolution (< 6e-8).
    for col, n in (("val_accuracy", "n_val"), ("test_accuracy", "n_test")):
        if f"{n}_old" in merged:  # goldens recorded with the example counts: those must match too
            assert merged[f"{n}_old"].tolist() == merged[f"{n}_new"].tolist(), n
        sizes = merged[n] if n in merged else merged[f"{n}_new"]
        counts = [(merged[f"{col}_{v}"] * sizes).round().astype(int).tolist() for v in ("new", "old")]
        assert counts[0] == counts[1], col
        assert merged[f"{col}_new"].tolist() == pytest.approx(merged[f"{col}_old"].tolist(), abs=1e-7), col


def _first_table_rows(report: Path) -> list[dict]:
    return next(s["tables"][0]["rows"] for s in json.loads(report.read_text())["sections"] if s["title"] != "Summary")


@pytest.mark.slow
def test_table2_smoke_numbers_unchanged(run_cli, env: Path) -> None:
    out = env / "table2"
    storage = f"sqlite:///{env / 'g.db'}"
    r = run_cli(
        "reproduce", "table2", "--seeds", 5, "--fidelity", "smoke", "--out", out, "--storage", storage, "--stack", "off"
    )
    assert r.code == 0, r.err
    _compare_runs(_runs(out / "table2-runs.csv"), _runs(GOLDEN / "table2-runs.csv"))
    assert _first_table_rows(out / "table2.json") == _first_table_rows(GOLDEN / "table2.json")


@pytest.mark.slow
def test_ofat_ablation_smoke_numbers_unchanged(run_cli, env: Path) -> None:
    storage = f"sqlite:///{env / 'g.db'}"
    case = "T2M2_T1M1"
    r = run_cli(
        "ablation",
        "--case",
        case,
        "--seeds",
        3,
        "--design",
        "ofat",
        "--fidelity",
        "smoke",
        "--storage",
        storage,
        "--stack",
        "off",
    )
    assert r.code == 0, r.err
    out = env / "ofat"
    r = run_cli("report", f"ablation-ofat-{case}-smoke", "--storage", storage, "--out", out, "--no-dashboard")
    assert r.code == 0, r.err
    name = f"ablation-ofat-{case}-smoke"
    new, old = _runs(out / f"{name}-runs.csv"), _runs(GOLDEN / f"{name}-runs.csv")
    _compare_runs(new, old)
    # K=1 and generator=gaussian are one model: the golden runs of the two labels were bit-identical
    pairs = old[old["variant"].isin(["K=1", "generator=gaussian"])].pivot(index="seed", columns="variant")
    assert (pairs["test_accuracy"]["K=1"] == pairs["test_accuracy"]["generator=gaussian"]).all()
