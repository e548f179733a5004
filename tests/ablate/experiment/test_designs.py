"""Tests of ablate.experiment.designs: which (case, variant, seed) points a design runs, their keys and their order.

The queue skips a point whose key it already holds, so two points sharing a key silently drop a run; and the
queue runs points in design order, so that order decides what a stopped study holds. Both are checked through
a real Optuna study and the real queue.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from ablate import record
from ablate.errors import AblateError
from ablate.execution import queue
from ablate.experiment.designs import (
    DesignPoint,
    Variant,
    expand_cases,
    load_ablation_design,
    load_table_design,
    merge_identical,
    parse_settings,
)
from ablate.experiment.names import settings_label
from crossgen.config import CASES, CGIConfig

pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")


def _study() -> optuna.Study:
    return optuna.create_study(direction="maximize")  # Optuna's in-memory storage


@pytest.mark.parametrize("design", ["ofat", "factorial"])
def test_multi_case_keys_are_unique_and_every_point_is_enqueued(design: str) -> None:
    d = load_ablation_design(design)
    cases, seeds = list(CASES[:2]), 2
    points = d.points(cases, seeds)
    expected = {(c, v.label, s) for c, v, s in itertools.product(cases, d.variants, range(seeds))}
    assert len(points) == len(expected) == len(cases) * len(d.variants) * seeds
    assert {(p.case, p.variant.label, p.seed) for p in points} == expected
    assert len({p.key for p in points}) == len(points)

    study = _study()
    assert queue.enqueue_points(study, points) == len(points)
    waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    assert len(waiting) == len(points)
    enqueued = {(t.user_attrs["case"], t.user_attrs["variant"], t.user_attrs["seed"]) for t in waiting}
    assert enqueued == expected
    for case in cases:  # the second case is not shadowed by the first
        assert sum(t.user_attrs["case"] == case for t in waiting) == len(d.variants) * seeds


def test_points_are_seed_major_so_every_block_of_v_is_one_complete_seed() -> None:
    d = load_ablation_design("ofat")
    v = len(d.variants)
    labels = [x.label for x in d.variants]
    for cases in ([CASES[0]], list(CASES[:2])):
        points = d.points(cases, 3)
        assert {p.seed for p in points[:v]} == {0}
        assert [p.variant.label for p in points[:v]] == labels
        blocks = [points[i : i + v] for i in range(0, len(points), v)]
        assert [(b[0].case, b[0].seed) for b in blocks] == list(itertools.product(cases, range(3)))
        for block in blocks:
            assert {(p.case, p.seed) for p in block} == {(block[0].case, block[0].seed)}
            assert [p.variant.label for p in block] == labels


def test_a_run_stopped_after_v_trials_holds_one_complete_seed() -> None:
    """The queue runs points in design order: stopping it after V trials leaves seed 0 of every variant."""
    d = load_table_design("table2")
    v = len(d.variants)
    study = _study()
    queue.enqueue_points(study, d.points([CASES[0]], 5))
    calls = 0

    def objective(trial: optuna.Trial) -> float:
        nonlocal calls
        calls += 1
        if calls > v:
            raise KeyboardInterrupt  # Ctrl-C in the middle of the study
        return 0.5

    with pytest.raises(KeyboardInterrupt):
        queue.work(study, objective)
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    assert len(done) == v
    assert sorted((t.user_attrs["variant"], t.user_attrs["seed"]) for t in done) == sorted(
        (x.label, 0) for x in d.variants
    )
    assert all(t.user_attrs[record.KEY] for t in done)


# --------------------------------------------------------------------------------------------------
# Loading designs: what each row runs, and one-line errors for bad definition files
# --------------------------------------------------------------------------------------------------


def _toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "design.toml"
    path.write_text(text)
    return path


def test_ofat_flips_each_switch_and_walks_every_ladder_level_but_the_default() -> None:
    d = load_ablation_design("ofat")
    by_label = {v.label: v for v in d.variants}
    assert d.variants[0].label == "full" and d.variants[0].switches == {}
    assert d.variants[-1].label == "no transfer" and d.variants[-1].technique == "bnn"
    assert by_label["init=random"].switches == {"init": "random"}
    defaults = CGIConfig()
    for label in ("M=100", "M=500", "M=5000", "K=2", "K=10"):  # levels after the default one too
        name, value = label.split("=")
        assert by_label[label].switches == {name: int(value)}
    assert f"M={defaults.M}" not in by_label and f"K={defaults.K}" not in by_label  # the full method itself
    assert by_label["generator=gaussian"].aliases == ("K=1",)  # one Gaussian is K = 1: run once, two names
    assert by_label["generator=gaussian"].title == "generator=gaussian ≡ K=1"
    assert (d.reference, d.baseline) == ("full", "no transfer")


def test_factorial_runs_every_combination_once_with_the_defaults_as_reference() -> None:
    d = load_ablation_design("factorial")
    assert len(d.variants) == 2**5 + 1
    full = [v for v in d.variants if v.label == "full"]
    assert len(full) == 1 and full[0].technique == "cgi"
    assert len({json.dumps(v.switches, sort_keys=True) for v in d.variants[:-1]}) == 2**5
    assert "init=random,generator=gaussian,scope=shared,bootstrap=bayesian,transfer=mu" in {v.label for v in d.variants}


def test_factorial_without_the_defaults_among_its_combinations_puts_the_full_method_first(tmp_path: Path) -> None:
    path = _toml(tmp_path, '[factorial]\nfactors = { init = ["random"], scope = ["separate", "shared"] }\n')
    d = load_ablation_design("factorial", path)
    assert [v.label for v in d.variants] == [
        "full",
        "init=random,scope=separate",
        "init=random,scope=shared",
        "no transfer",
    ]


def test_ofat_from_a_file_with_a_based_full_method(tmp_path: Path) -> None:
    path = _toml(tmp_path, '[full]\nM = 50\nK = 2\n[ofat]\nflips = { scope = "shared" }\nladders = { K = [2, 3] }\n')
    d = load_ablation_design("ofat", path)
    assert [(v.label, v.switches) for v in d.variants] == [
        ("full", {"M": 50, "K": 2}),
        ("scope=shared", {"M": 50, "K": 2, "scope": "shared"}),
        ("K=3", {"M": 50, "K": 3}),
        ("no transfer", {}),
    ]


@pytest.mark.parametrize(
    ("kind", "text", "message"),
    [
        ("ofat", '[ofat]\nflips = { init = "warm" }\n', "variant 'init=warm': init='warm' is not one of"),
        ("factorial", "[factorial]\n", r"\[factorial\] needs `factors`"),
        ("ofat", 'reference = "x"\nbaseline = "x"\n[ofat]\n', "duplicate variant labels in the ofat design"),
        *(
            (kind, f"[{kind}]\n{table} = {{ K = {levels} }}\n", rf"{table}\.K must be a non-empty list of values")
            for kind, table in (("ofat", "ladders"), ("factorial", "factors"))
            for levels in ("[]", "3", '"23"')
        ),
    ],
)
def test_bad_ablation_files_are_one_line_errors(tmp_path: Path, kind: str, text: str, message: str) -> None:
    with pytest.raises(AblateError, match=message):
        load_ablation_design(kind, _toml(tmp_path, text))


def test_unknown_design_kind_is_an_error() -> None:
    with pytest.raises(AblateError, match="--design 'grid' is not one of ofat, factorial"):
        load_ablation_design("grid")


def test_table_design() -> None:
    d = load_table_design("table2")
    assert d.name == "table2" and d.title.startswith("Table 2")
    assert [(v.technique, v.switches) for v in d.variants] == [("cgi", {}), ("bnn", {})]
    assert d.reference == d.baseline == "Without Transfer Benchmark"
    assert d.to_dict() == {
        "name": "table2",
        "title": d.title,
        "reference": d.baseline,
        "baseline": d.baseline,
        "variants": [v.to_dict() for v in d.variants],
    }
    assert d.to_dict()["variants"][0] == {
        "label": "Cross Generative Initialisation",
        "technique": "cgi",
        "switches": {},
        "aliases": (),
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('baseline = "b"\n', "needs \\[\\[variants\\]\\] entries"),
        ('baseline = "b"\nvariants = []\n', "needs \\[\\[variants\\]\\] entries"),
        ('baseline = "b"\n[[variants]]\nlabel = "a"\ntechnique = "cgi"\n', "baseline 'b' is not one of the variants"),
        ('baseline = "a"\n[[variants]]\nlabel = "a"\ntechnique = "mlp"\n', "variant 'a' technique 'mlp' is not one of"),
        (
            'baseline = "a"\n[[variants]]\nlabel = "a"\ntechnique = "cgi"\nswitches = { M = 0 }\n',
            "variant 'a': M=0 must be",
        ),
    ],
)
def test_bad_table_files_are_one_line_errors(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(AblateError, match=message):
        load_table_design("t", _toml(tmp_path, text))


def test_merge_identical_keeps_the_first_label_and_collects_aliases() -> None:
    a, b = Variant("a", "cgi", {"generator": "gaussian"}), Variant("b", "cgi", {"K": 1}, ("b2",))
    c = Variant("c", "cgi", {"K": 2})
    assert merge_identical([a, c, b]) == (Variant("a", "cgi", {"generator": "gaussian"}, ("b", "b2")), c)
    assert merge_identical([Variant("x", "bnn"), Variant("y", "cgi")]) == (Variant("x", "bnn"), Variant("y", "cgi"))


def test_design_point_record_and_key() -> None:
    v = Variant("K=2", "cgi", {"K": 2})
    p = DesignPoint("T2M1_T1M2", v, 3)
    assert p.key == "T2M1_T1M2|K=2|3"
    assert p.point() == record.Point("T2M1_T1M2|K=2|3", "T2M1_T1M2", "K=2", "cgi", 3, {"K": 2})


def test_with_base_puts_every_variant_on_the_base_and_the_variant_wins() -> None:
    d = load_ablation_design("ofat")
    assert d.with_base({}) is d
    based = d.with_base({"M": 100, "lam": 0.5})
    by_label = {v.label: v for v in based.variants}
    assert by_label["full"].switches == {"M": 100, "lam": 0.5}
    assert by_label["M=500"].switches == {"M": 500, "lam": 0.5}
    assert by_label["no transfer"].switches == {"M": 100, "lam": 0.5}
    # on M = 100 the full method and the M=100 row are one configuration: merged, under both names
    assert by_label["full"].aliases == ("M=100",) and "M=100" not in by_label
    assert (based.name, based.reference, based.baseline) == (d.name, d.reference, d.baseline)
    with pytest.raises(AblateError, match="--set: variant 'full': M=0 must be"):
        d.with_base({"M": 0})


def test_parse_settings_and_its_label() -> None:
    assert parse_settings(None) == {}
    assert parse_settings([" M=3", "init_log_sigma=-2.3"]) == {"M": 3, "init_log_sigma": -2.3}
    assert settings_label({"M": 3, "K": 2}) == "+K=2+M=3"
    assert settings_label({}) == ""
    for bad, message in [("M", "write NAME=VALUE"), ("nope=1", "'nope' is not a switch"), ("M=abc", "M='abc'")]:
        with pytest.raises(AblateError, match=message):
            parse_settings([bad])


def test_expand_cases() -> None:
    assert expand_cases("all") == list(CASES)
    assert expand_cases(CASES[2]) == [CASES[2]]
    with pytest.raises(AblateError, match="--case 'T9' is not one of"):
        expand_cases("T9")


def test_design_values_are_immutable() -> None:
    """One design is shared by the queue, every worker and the report: none of them may change it."""
    d = load_table_design("table2")
    point = d.points([CASES[0]], 1)[0]
    for obj, attr in ((d, "reference"), (d.variants[0], "label"), (point, "seed")):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(obj, attr, getattr(obj, attr))


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ('label = 5\ntechnique = "bnn"', r"\[\[variants\]\] entry 1: label must be a non-empty string, not 5"),
        ('label = ""\ntechnique = "bnn"', r"\[\[variants\]\] entry 1: label must be a non-empty string, not ''"),
        ('label = " x"\ntechnique = "bnn"', r"label ' x' must not hold control characters or surrounding whitespace"),
        ('label = "x"\ntechnique = "bnn"\nzz = 1\naa = 2', r"unknown key 'zz' in \[\[variants\]\] entry 1"),
    ],
)
def test_a_table_file_names_the_entry_and_the_first_bad_key(tmp_path, entry: str, message: str) -> None:  # noqa: ANN001
    path = tmp_path / "t.toml"
    path.write_text(f'baseline = "x"\n[[variants]]\n{entry}\n')
    with pytest.raises(AblateError, match=message):
        load_table_design("t", path)
