"""The kinds of study as types (ablate.execution.plans): what each gives execution, and a search's options settled
together before anything is written."""

from __future__ import annotations

import pytest

from ablate import record
from ablate.errors import AblateError
from ablate.execution.plans import ConfirmationPlan, DesignPlan, SensitivityPlan, StudyPlan, settle_search
from ablate.experiment.designs import load_ablation_design
from ablate.experiment.presets import load_fidelity
from ablate.experiment.space import load_space

CASE = "T2M1_T1M2"


def test_a_search_settles_its_pruner_from_its_seeds_and_refuses_what_cannot_work() -> None:
    space = load_space()
    assert settle_search("tpe", None, seeds=2, trials=5, space=space, base={}).pruner == "wilcoxon"
    assert settle_search("tpe", None, seeds=1, trials=5, space=space, base={}).pruner == "median"
    refusals = [
        (("nope", None), {}, "--sampler 'nope' is not one of tpe, random, qmc, grid"),
        (("tpe", "nope"), {}, "--pruner 'nope' is not one of none, median, wilcoxon, hyperband"),
        (("tpe", "wilcoxon"), {}, "--pruner wilcoxon compares seeds: it needs --seeds >= 2"),
        (("tpe", "none"), {space.params[0].name: 1}, f"--set {space.params[0].name}: already a parameter"),
    ]
    for (sampler, pruner), base, message in refusals:
        with pytest.raises(AblateError, match=message.replace("(", r"\(").replace("+", r"\+")):
            settle_search(sampler, pruner, seeds=1, trials=5, space=space, base=base)


def test_a_search_that_cannot_prune_or_asks_more_of_a_grid_than_it_holds_is_told_so() -> None:
    space = load_space()
    told = settle_search("tpe", "wilcoxon", seeds=2, trials=5, space=space, base={})
    assert told.notes and told.notes[0].startswith("warning: --pruner wilcoxon cannot prune with --seeds 2")
    size = 1
    for values in space.grid().values():
        size *= len(values)
    grid = settle_search("grid", "none", seeds=1, trials=size + 7, space=space, base={})
    assert grid.trials == size and grid.notes == (
        f"grid has {size} points: --trials lowered from {size + 7} to {size}",
    )
    assert settle_search("grid", "none", seeds=1, trials=size, space=space, base={}).notes == ()


def test_each_kind_answers_for_itself_and_the_bare_plan_only_carries_settings() -> None:
    smoke = load_fidelity("smoke")
    common = {"storage": "sqlite:///:memory:", "fidelity": smoke, "workers": 3, "device": "cpu"}
    design = DesignPlan(name="d", design=load_ablation_design("ofat"), cases=(CASE,), seeds=2, **common)
    search = SensitivityPlan(name="s", case=CASE, space=load_space(), trials=7, **common)
    assert (design.kind, search.kind) == ("design", "sensitivity")
    assert design.total == len(design.points()) and search.total == 7
    assert (design.replace_failed, search.replace_failed) == (False, True)
    assert design.definition().kind == "design" and search.definition().extra["sampler"] == "tpe"
    bare = StudyPlan(name="b", **common)
    assert bare.execution()["workers"] == 3 and "name" not in bare.execution()
    for ask in (lambda: bare.total, bare.definition):
        with pytest.raises(NotImplementedError, match="plans execution only"):
            ask()


def test_a_confirmation_is_a_design_whose_definition_carries_what_it_confirms() -> None:
    common = {"storage": "sqlite:///:memory:", "fidelity": load_fidelity("smoke"), "cases": (CASE,), "seeds": 2}
    link = {"study": "sensitivity-x", "top": 2, "seed_offset": 1000}
    plan = ConfirmationPlan(name="confirm-top2-sensitivity-x", design=load_ablation_design("ofat"), link=link, **common)
    definition = plan.definition()
    assert plan.source == "sensitivity-x" and plan.total == len(plan.points())
    assert definition.kind == "design" and record.study_kind(definition) == "confirmation"
    assert record.confirmation_source(definition) == link
    plain = DesignPlan(name="d", design=load_ablation_design("ofat"), **common).definition()
    assert record.study_kind(plain) == "ablation" and definition.design == plain.design
