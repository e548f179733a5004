"""The trial-record contract: what is written is what is read, and old layouts are refused in one line."""

from __future__ import annotations

import dataclasses
import json

import optuna
import pytest

from ablate import record
from ablate.errors import AblateError
from ablate.methods.cgi import CGIMethod


@pytest.fixture
def study() -> optuna.Study:
    return optuna.create_study(direction="maximize")


def _definition(**changes) -> record.Definition:
    values = {
        "kind": "design",
        "name": "x",
        "fidelity": {"name": "smoke", "epochs": 4},
        "switches": CGIMethod().switches().declarations(),
        "design": {"name": "ablation-ofat", "reference": "full", "baseline": "no transfer", "variants": []},
        "cases": ("T2M1_T1M2",),
        "seeds": 2,
    }
    return record.Definition(**{**values, **changes})


def test_definition_round_trips_and_resumption_checks_identity(study: optuna.Study) -> None:
    record.write_definition(study, _definition())
    back = record.read_definition(study)
    assert back == _definition()
    assert back.label("M") == "--M" and back.label("lam") == "--lambda"
    record.write_definition(study, _definition(name="x"))  # same experiment: accepted
    with pytest.raises(AblateError, match="different fidelity"):
        record.write_definition(study, _definition(fidelity={"name": "quick", "epochs": 6}))


def test_old_layout_is_refused_with_its_version(study: optuna.Study) -> None:
    study.set_user_attr("ablate_kind", "design")  # what ablate 0.1 wrote
    study.enqueue_trial({}, user_attrs={"design_key": "k", "case": "T2M1_T1M2"})
    with pytest.raises(AblateError, match="schema 1") as info:
        record.read_definition(study)
    assert "\n" not in str(info.value)
    with pytest.raises(AblateError, match="schema 1"):
        record.write_definition(study, _definition())


def test_design_run_round_trip(study: optuna.Study) -> None:
    point = record.Point("T2M1_T1M2|full|0", "T2M1_T1M2", "full", "cgi", 0, {"M": 100})
    study.enqueue_trial({}, user_attrs=record.point_attrs(point))
    trial = study.ask()
    assert record.read_point(trial.user_attrs) == point
    result = record.SeedResult(0, 0.9, 0.8, 1.5, n_val=71, n_test=70, curve={"val": [0.5, 0.9], "test": [0.4, 0.8]})
    record.write_run(trial, {"M": 100, "K": 5}, result, {"target_training": 1.23456})
    record.write_diagnostics(
        trial, {"mean_log_sigma": {"middle": -4.0}, "fit_ratio": {"middle": {"target": 100, "source": 50}}, "other": 1}
    )
    study.tell(trial, 0.9)
    rec = record.read_trial(study.trials[0])
    assert rec.key == point.key and rec.variant == "full" and rec.technique == "cgi" and rec.seed == 0
    assert rec.config == {"M": 100, "K": 5}
    assert rec.seeds == (result,)
    assert rec.stages == {"target_training": 1.2346}
    assert record.diagnostics_columns(rec.attrs) == {
        "mean_log_sigma_middle": -4.0,
        "fit_target_middle": 100,
        "fit_source_middle": 50,
    }


def test_sampled_trial_round_trip_and_means(study: optuna.Study) -> None:
    trial = study.ask()
    record.write_started(trial, "T1M1_T2M2", {"M": 7})
    seeds = [
        record.SeedResult(0, 0.9, 0.8, 1.0, benchmark={"val_accuracy": 0.85, "test_accuracy": 0.82}),
        record.SeedResult(1, 0.7, 0.6, 1.0, benchmark={"val_accuracy": 0.75, "test_accuracy": 0.62}),
    ]
    record.write_sampled(trial, seeds, {"s": 1.0}, pruned_after=None)
    study.tell(trial, 0.8)
    rec = record.read_trial(study.trials[0])
    assert rec.case == "T1M1_T2M2" and rec.config == {"M": 7} and rec.seeds == tuple(seeds)
    assert rec.test_accuracy == pytest.approx(0.7)
    assert rec.attrs["transfer_gain"] == pytest.approx(((0.9 - 0.85) + (0.7 - 0.75)) / 2)
    assert rec.attrs["transfer_gain_test"] == pytest.approx(((0.8 - 0.82) + (0.6 - 0.62)) / 2)


def test_old_multi_seed_trial_is_refused(study: optuna.Study) -> None:
    trial = study.ask()
    trial.set_user_attr("seeds_run", 2)
    trial.set_user_attr("seed0:val_accuracy", 0.9)
    study.tell(trial, 0.9)
    with pytest.raises(AblateError, match="schema 1"):
        record.read_trial(study.trials[0])


def test_benchmark_cache(study: optuna.Study) -> None:
    assert record.cached_benchmark(study, "T2M1_T1M2", 0) is None
    record.store_benchmark(study, "T2M1_T1M2", 0, {"val_accuracy": 0.5, "test_accuracy": 0.4})
    assert record.cached_benchmark(study, "T2M1_T1M2", 0) == {"val_accuracy": 0.5, "test_accuracy": 0.4}
    assert record.cached_benchmark(study, "T2M1_T1M2", 1) is None


def test_resuming_a_study_stored_before_presets_had_switches(study: optuna.Study) -> None:
    record.write_definition(study, _definition(fidelity={"name": "smoke", "epochs": 4}))
    record.write_definition(study, _definition(fidelity={"name": "smoke", "epochs": 4, "switches": {}}))
    with pytest.raises(AblateError, match="different fidelity"):
        record.write_definition(
            study, _definition(fidelity={"name": "smoke", "epochs": 4, "switches": {"init_log_sigma": -2.3}})
        )


def test_the_definition_is_a_system_attribute_and_what_optuna_studies_shows_is_short(study: optuna.Study) -> None:
    import json

    record.write_definition(study, _definition())
    shown = json.dumps(study.user_attrs)
    assert len(shown) < 200, shown  # was the whole definition (~7.7 KB): `optuna studies` rows of 7,989 chars
    assert study.user_attrs[record.DEFINITION]["kind"] == "design" and record.kind_of(study) == "design"
    assert record.read_definition(study) == _definition()


def test_a_schema_2_study_stays_readable(study: optuna.Study) -> None:
    """Schema 2 kept the whole definition in the user attribute and float32 accuracies in its trials."""
    import dataclasses

    old = dataclasses.replace(_definition(), schema=2)
    study.set_user_attr(record.DEFINITION, json.loads(json.dumps(dataclasses.asdict(old))))
    assert record.read_definition(study) == old
    record.write_definition(study, _definition())  # resuming it: the same experiment, accepted
    point = record.Point("T2M1_T1M2|full|0", "T2M1_T1M2", "full", "cgi", 0, {})
    study.enqueue_trial({}, user_attrs={**record.point_attrs(point), "schema": 2})
    trial = study.ask()
    assert record.read_point(trial.user_attrs) == point
    trial.set_user_attr("val_accuracy", 0.9411764740943909)
    study.tell(trial, 0.9411764740943909)
    assert record.read_trial(study.trials[0]).seeds[0].val_accuracy == 0.9411764740943909


def test_accuracies_are_exact_fractions() -> None:
    assert record.exact(0.9411764740943909, 289) == 272 / 289 == 0.9411764705882353
    assert record.exact(0.5, None) == 0.5 and record.exact(None, 10) is None


def test_a_study_plain_optuna_made_is_not_called_an_older_ablate(study: optuna.Study) -> None:
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    with pytest.raises(AblateError, match="was not made by ablate") as info:
        record.read_definition(study)
    assert "older ablate" not in str(info.value)


def test_a_refused_resume_names_the_stored_and_given_values(study: optuna.Study) -> None:
    search = _definition(kind="sensitivity", case="T2M1_T1M2", cases=(), design=None, extra={"sampler": "tpe"})
    record.write_definition(study, search)
    with pytest.raises(AblateError, match=r"different seeds \(stored 2, given 3\)"):
        record.write_definition(study, dataclasses.replace(search, seeds=3))
    with pytest.raises(AblateError, match=r'different sampler \(stored "tpe", given "random"\)'):
        record.write_definition(study, dataclasses.replace(search, extra={"sampler": "random"}))


def test_every_study_has_one_kind_in_one_vocabulary() -> None:
    """Reports pick their builder by this kind: a confirmation is a design study that links a search."""
    table = {"name": "table2", "reference": "cgi", "baseline": "bnn", "variants": []}
    assert record.study_kind(_definition()) == "ablation"
    assert record.study_kind(_definition(design=table)) == "table"
    assert record.study_kind(_definition(kind="sensitivity", design=None, case="T2M1_T1M2", cases=())) == "sensitivity"
    confirms = {record.CONFIRMS: {"study": "sensitivity-T2M1_T1M2-smoke"}}
    assert record.study_kind(_definition(design={**table, "name": "confirm"}, extra=confirms)) == "confirmation"
    assert set(record.STUDY_KINDS) == {"sensitivity", "confirmation", "ablation", "table"}


# --------------------------------------------------------------------------- what each field says, at its edges
def test_a_definition_summary_names_its_case_or_its_cases_and_defaults_to_one_seed() -> None:
    assert _definition().summary()["cases"] == ["T2M1_T1M2"] and "case" not in _definition().summary()
    search = _definition(kind="sensitivity", design=None, case="T1M1_T2M2", cases=())
    assert search.summary()["case"] == "T1M1_T2M2" and "cases" not in search.summary()
    assert record.Definition(kind="design", name="x", fidelity={}, switches=()).seeds == 1


def test_a_refused_resumption_shows_short_values_and_hides_long_ones() -> None:
    assert record._shown("x" * 58) == json.dumps("x" * 58)  # 60 characters with its quotes: shown
    assert record._shown("x" * 59) == "(too long to show)"


def test_a_search_stored_before_its_sampler_was_recorded_resumes_and_other_gaps_do_not(study: optuna.Study) -> None:
    search = _definition(kind="sensitivity", design=None, case="T2M1_T1M2", cases=())
    record.write_definition(study, search)  # stored without a sampler, as older versions did
    record.write_definition(study, dataclasses.replace(search, extra={"sampler": "tpe"}))
    design = optuna.create_study(direction="maximize")
    record.write_definition(design, _definition(cases=()))
    with pytest.raises(AblateError, match="different case"):  # a gap in what is stored is no licence elsewhere
        record.write_definition(design, _definition(case="T2M1_T1M2", cases=()))


def test_a_point_without_a_schema_is_named_as_schema_1() -> None:
    with pytest.raises(AblateError, match="design trial of record schema 1;"):
        record.read_point({record.KEY: "k"})


def test_a_run_keeps_seconds_to_four_decimals_and_its_metrics_as_properties(study: optuna.Study) -> None:
    study.enqueue_trial({}, user_attrs=record.point_attrs(record.Point("k", "T2M1_T1M2", "full", "cgi", 0, {})))
    trial = study.ask()
    record.write_run(trial, {}, record.SeedResult(0, 0.9, 0.8, 1.234567), {})
    study.tell(trial, 0.9)
    rec = record.read_trial(study.trials[0])
    assert rec.attrs["seconds"] == 1.2346
    assert (rec.val_accuracy, rec.test_accuracy) == (0.9, 0.8)  # values, not methods


def test_transfer_gain_is_the_mean_over_the_seeds_with_a_benchmark(study: optuna.Study) -> None:
    trial = study.ask()
    seeds = [
        record.SeedResult(0, 0.9, 0.8, 1.0, benchmark={"val_accuracy": 0.8, "test_accuracy": 0.7}),
        record.SeedResult(1, 0.7, 0.6, 1.0, benchmark={"val_accuracy": 0.5, "test_accuracy": 0.5}),
        record.SeedResult(2, 0.6, 0.6, 1.0),
    ]
    record.write_sampled(trial, seeds, {}, pruned_after=None)
    study.tell(trial, 0.7)
    attrs = study.trials[0].user_attrs
    assert attrs["transfer_gain"] == pytest.approx((0.1 + 0.2) / 2)
    assert attrs["transfer_gain_test"] == pytest.approx((0.1 + 0.1) / 2)


def test_the_benchmark_seeds_a_search_has_cached(study: optuna.Study) -> None:
    for seed in (3, 11):
        record.store_benchmark(study, "T2M1_T1M2", seed, {"val_accuracy": 0.9, "test_accuracy": 0.9})
    study.set_user_attr("other:7", 1)
    assert record.benchmark_seeds(study) == {3, 11}


def test_a_study_names_the_method_that_made_it_from_its_provenance() -> None:
    made = {"method": {"title": "Digits pipeline", "baseline": "the logistic baseline"}}
    definition = _definition(extra={record.PROVENANCE: made})
    assert record.provenance_of(definition) == made
    assert record.method_labels(definition) == ("Digits pipeline", "the logistic baseline")
    assert record.method_labels(_definition()) == ("CGI", "the no-transfer benchmark")
    assert record.provenance_of(_definition()) is None


def test_a_merged_variant_is_titled_with_every_alias_under_each_of_its_names() -> None:
    design = {"variants": [{"label": "K=1", "aliases": ["generator=gaussian"]}, {"label": "full"}]}
    title = "K=1 ≡ generator=gaussian"
    assert record.variant_titles(design) == {"K=1": title, "generator=gaussian": title, "full": "full"}
    assert record.variant_titles(None) == {}


def test_a_definition_cannot_be_changed_once_made() -> None:
    """Every report and every resumption reads the one stored definition; none may alter it for the others."""
    with pytest.raises(dataclasses.FrozenInstanceError):
        _definition().seeds = 3  # type: ignore[misc]


def test_what_is_written_declares_the_current_schema_and_shows_keys_sorted() -> None:
    point = record.Point("k", "T2M1_T1M2", "full", "cgi", 0, {})
    assert record.SCHEMA == 3 and record.point_attrs(point)["schema"] == 3 and _definition().schema == 3
    assert record._shown({"b": 1, "a": 2}) == '{"a": 2, "b": 1}'


def test_an_old_search_without_a_sampler_still_has_every_other_field_checked(study: optuna.Study) -> None:
    search = _definition(kind="sensitivity", design=None, case="T2M1_T1M2", cases=())
    record.write_definition(study, search)
    with pytest.raises(AblateError, match="different seeds"):
        record.write_definition(study, dataclasses.replace(search, seeds=5, extra={"sampler": "tpe"}))


def test_records_cannot_be_changed_once_read() -> None:
    """A point, a seed's result and a read trial are shared by the queue, the workers and the reports."""
    point = record.Point("k", "T2M1_T1M2", "full", "cgi", 0, {})
    for frozen in (point, record.SeedResult(0, 0.9, 0.8, 1.0)):
        with pytest.raises(dataclasses.FrozenInstanceError):
            frozen.seed = 1  # type: ignore[misc]
    assert record.TrialRecord.__dataclass_params__.frozen  # type: ignore[attr-defined]


def test_a_pruned_search_trial_says_after_how_many_seeds(study: optuna.Study) -> None:
    seeds = [record.SeedResult(0, 0.9, 0.8, 1.0)]
    for pruned_after in (1, None):
        trial = study.ask()
        record.write_sampled(trial, seeds, {}, pruned_after=pruned_after)
        study.tell(trial, 0.9)
    first, second = study.trials
    assert first.user_attrs["pruned_after"] == 1 and "pruned_after" not in second.user_attrs


def test_a_run_recorded_without_its_time_reads_as_zero_seconds(study: optuna.Study) -> None:
    study.enqueue_trial({}, user_attrs=record.point_attrs(record.Point("k", "T2M1_T1M2", "full", "cgi", 0, {})))
    trial = study.ask()
    trial.set_user_attr("val_accuracy", 0.9)
    study.tell(trial, 0.9)
    assert record.read_trial(study.trials[0]).seeds[0].seconds == 0.0


def test_a_search_lists_each_confirmation_once_in_order(study: optuna.Study) -> None:
    assert record.confirmations_of(study) == []
    for name in ("confirm-top2-s", "confirm-top3-s", "confirm-top2-s"):
        record.link_confirmation(study, name)
    assert record.confirmations_of(study) == ["confirm-top2-s", "confirm-top3-s"]


def test_discarded_results_are_the_notes_alone_in_trial_order(study: optuna.Study) -> None:
    record.write_discarded(study, 4, {"trial": 4, "worker": "w1", "value": 0.5})
    record.write_discarded(study, 0, {"trial": 0, "worker": "w1", "value": 0.75})
    record.write_discarded(study, 9, {"worker": "w2", "value": 0.25})  # a note from before trial numbers were kept
    record.store_benchmark(study, "T2M1_T1M2", 0, {"val_accuracy": 0.9, "test_accuracy": 0.9})  # a mapping, no note
    notes = record.discarded_results(study)
    assert [n.get("trial") for n in notes] == [None, 0, 4] and [n["value"] for n in notes] == [0.25, 0.75, 0.5]


def test_a_curve_is_snapped_to_exact_fractions_and_no_curve_stays_none():
    curve = {"val": [0.94117647, 0.5294118], "test": [0.3333334]}
    assert record.exact_curve(curve, 17, 3) == {"val": [16 / 17, 9 / 17], "test": [1 / 3]}
    assert record.exact_curve(None, 17, 3) is None and record.exact_curve({}, 17, 3) == {}
