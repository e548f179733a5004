"""The trial-record contract: the one module that writes and reads what a study and its trials store.

Everything a report needs is written here when a study is created (its *definition*: kind, fidelity preset,
design or space, the switches' declarations) and when a trial runs (its *record*: the resolved switches,
per-seed metrics, stage timings, benchmark links, failure reason). Reports read only this, never the
``studies/*.toml`` files again, so editing a definition file cannot change an old study's report.

Layout (schema ``SCHEMA``): the study attribute ``definition`` holds the definition; each trial holds flat,
readable attributes (``case``, ``variant``, ``seed``, ``val_accuracy``…) plus ``config`` (every switch's
value) and, for multi-seed trials, ``seeds`` (one dict per seed). Studies written before the schema existed
are refused with one line naming the version.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import optuna
from optuna.distributions import CategoricalDistribution, IntDistribution
from optuna.trial import FrozenTrial, TrialState

from ablate.errors import AblateError
from ablate.execution._optuna_compat import storage_of

SCHEMA = 3
"""Version of the layout below. 1 was the unversioned layout of ablate 0.1 (string keys per seed); 2 stored
float32 accuracies (0.9411764740943909 for 272/289) and the whole definition as one study user attribute;
3 stores accuracies as the exact fraction correct/n and the definition as a study system attribute, with a
short summary as the user attribute. Schema 2 studies stay readable."""
READABLE = (2, 3)

DEFINITION = "definition"  # study user attribute: a short summary a person reads in `optuna studies`
DEFINITION_FULL = "ablate:definition"  # study system attribute: the whole definition (schema >= 3)
FAIL_REASON = "fail_reason"
KEY = "design_key"
TICKET = "ticket"
_SUMMARY = ("val_accuracy", "test_accuracy", "seconds")


# ------------------------------------------------------------------------------------------------ study
@dataclass(frozen=True)
class Definition:
    """What a study is: stored once at creation, read by every report and by every resumption."""

    kind: str  # "design" | "sensitivity"
    name: str
    fidelity: dict[str, Any]
    switches: tuple[dict[str, Any], ...]  # the method's switch declarations at creation (labels, kinds, choices)
    design: dict[str, Any] | None = None  # title, reference, baseline, variants [{label, technique, switches}]
    cases: tuple[str, ...] = ()
    seeds: int = 1
    space: tuple[dict[str, Any], ...] = ()  # [{name, type, choices, low, high, log, when}]
    case: str | None = None
    schema: int = SCHEMA
    extra: dict[str, Any] = field(default_factory=dict)

    def switch_names(self) -> list[str]:
        return [s["name"] for s in self.switches]

    def label(self, name: str) -> str:
        """A switch's report label: its CLI flag, the name a user typed."""
        for s in self.switches:
            if s["name"] == name:
                return s.get("flag", name)
        return name

    def identity(self) -> dict[str, Any]:
        """What must match when a study is resumed (mixing fidelities or designs in one study is dishonest)."""
        fidelity = {k: v for k, v in self.fidelity.items() if v or k != "switches"}  # no preset switches = none
        ident = {"kind": self.kind, "fidelity": fidelity, "design": self.design, "space": list(self.space)}
        ident.update(case=self.case, seeds=self.seeds if self.kind == "sensitivity" else None)
        if self.kind == "sensitivity":
            ident["sampler"] = self.extra.get("sampler")
        return json.loads(json.dumps(ident, sort_keys=True))

    def summary(self) -> dict[str, Any]:
        """What ``optuna studies`` and the dashboard show of the definition (the whole one is a system attr)."""
        where = {"case": self.case} if self.case else {"cases": list(self.cases)}
        return {
            "kind": self.kind,
            "name": self.name,
            **where,
            "fidelity": self.fidelity.get("name"),
            "seeds": self.seeds,
            "schema": self.schema,
        }


def _study_id(study: optuna.Study) -> int:
    return storage_of(study).get_study_id_from_name(study.study_name)


def _raw_definition(study: optuna.Study) -> dict[str, Any] | None:
    """The whole stored definition: the system attribute (schema >= 3), else the user attribute (schema 2)."""
    full = storage_of(study).get_study_system_attrs(_study_id(study)).get(DEFINITION_FULL)
    if isinstance(full, dict):
        return full
    legacy = study.user_attrs.get(DEFINITION)
    return legacy if isinstance(legacy, dict) and "switches" in legacy else None


def _shown(value: Any) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 60 else "(too long to show)"


def write_definition(study: optuna.Study, definition: Definition) -> None:
    """Store the definition on a new study; on an existing one, refuse a different experiment."""
    existing = _raw_definition(study)
    payload = json.loads(json.dumps(asdict(definition)))
    if existing is None:
        if study.get_trials(deepcopy=False):
            raise _not_ours(study)
        storage_of(study).set_study_system_attr(_study_id(study), DEFINITION_FULL, payload)
        study.set_user_attr(DEFINITION, definition.summary())
        return
    stored = read_definition(study)
    mine, theirs = definition.identity(), stored.identity()
    for key in mine:
        if key == "sampler" and theirs.get(key) is None:
            continue  # a study stored before the sampler was part of its identity
        if mine[key] != theirs.get(key):
            raise AblateError(
                f"study {study.study_name!r} already exists with a different {key} (stored {_shown(theirs.get(key))}, "
                f"given {_shown(mine[key])}); choose another --study-name"
            )


def _not_ours(study: optuna.Study) -> AblateError:
    if "ablate_kind" in study.user_attrs:
        return AblateError(
            f"study {study.study_name!r} was written by an older ablate (trial record schema 1); this version "
            f"reads schemas {', '.join(map(str, READABLE))}: rerun it under a new --study-name"
        )
    return AblateError(
        f"study {study.study_name!r} was not made by ablate (it has no ablate definition): ablate reads the "
        "studies that `ablate study`, `ablation`, `confirm` and `reproduce` make"
    )


def read_definition(study: optuna.Study) -> Definition:
    raw = _raw_definition(study)
    if raw is None:
        raise _not_ours(study)
    if raw.get("schema") not in READABLE:
        raise AblateError(
            f"study {study.study_name!r} has trial record schema {raw.get('schema')}; this version reads "
            f"{', '.join(map(str, READABLE))}"
        )
    tuples = {"switches", "cases", "space"}
    return Definition(**{k: tuple(v) if k in tuples else v for k, v in raw.items()})


def kind_of(study: optuna.Study) -> str | None:
    """The study's kind without refusing old layouts (listing studies must show them all)."""
    raw = study.user_attrs.get(DEFINITION)
    return raw.get("kind") if isinstance(raw, dict) else study.user_attrs.get("ablate_kind")


# ------------------------------------------------------------------------------------------------ trials
@dataclass(frozen=True)
class Point:
    """One design point as enqueued: what the objective runs."""

    key: str
    case: str
    variant: str
    technique: str
    seed: int
    switches: dict[str, Any]


def point_attrs(point: Point) -> dict[str, Any]:
    """User attributes an enqueued design trial carries (and the dashboard shows)."""
    return {
        KEY: point.key,
        "case": point.case,
        "variant": point.variant,
        "technique": point.technique,
        "seed": point.seed,
        "overrides": point.switches,
        "schema": SCHEMA,
    }


POINT_PARAMS = ("case", "variant", "seed")
"""A design point's coordinates, also stored as Optuna parameters so optuna-dashboard (and ``optuna trials``)
can plot and filter by them. They are written from the same :class:`Point` as the user attributes, and what
runs is read from those attributes only (:func:`read_point`): the parameters are a view, never a second
source."""


def waiting_point(point: Point, *, cases: Sequence[str], variants: Sequence[str], seeds: Sequence[int]) -> FrozenTrial:
    """The WAITING trial that enqueues ``point``: its record (user attributes) and its coordinates as params.

    ``cases``, ``variants`` and ``seeds`` span the whole design: a study's categorical distributions must be
    identical for every trial, so they are the design's, not the point's. Built as Optuna's own
    ``RetryFailedTrialCallback`` re-queues a trial (``create_trial(state=WAITING, params=…)``).
    """
    distributions = {
        "case": CategoricalDistribution(list(cases)),
        "variant": CategoricalDistribution(list(variants)),
        "seed": IntDistribution(min(seeds), max(seeds)),
    }
    params = {"case": point.case, "variant": point.variant, "seed": point.seed}
    return optuna.trial.create_trial(
        state=TrialState.WAITING, params=params, distributions=distributions, user_attrs=point_attrs(point)
    )


def read_point(attrs: Mapping[str, Any]) -> Point:
    if KEY not in attrs:
        raise AblateError("this trial carries no design point (was it created outside `ablate`?)")
    if attrs.get("schema") not in READABLE:
        raise AblateError(f"design trial of record schema {attrs.get('schema', 1)}; this version reads {SCHEMA}")
    return Point(
        attrs[KEY], attrs["case"], attrs["variant"], attrs["technique"], int(attrs["seed"]), dict(attrs["overrides"])
    )


@dataclass(frozen=True)
class SeedResult:
    """One seed of a trial: the run's metrics and, where a benchmark ran on the same seed, its metrics."""

    seed: int
    val_accuracy: float
    test_accuracy: float
    seconds: float
    n_val: int | None = None
    n_test: int | None = None
    benchmark: dict[str, float] | None = None
    curve: dict[str, list[float]] | None = None


def exact(accuracy: float | None, n: int | None) -> float | None:
    """An accuracy as the exact fraction correct/n it is (torch computes it in float32: 0.9411764740943909
    for 272/289, stored as 0.9411764705882353). Unchanged when n is unknown."""
    if accuracy is None or not n:
        return accuracy
    return round(float(accuracy) * n) / n


def exact_curve(curve: Mapping[str, list[float]] | None, n_val: int | None, n_test: int | None):
    if not curve:
        return curve
    return {"val": [exact(a, n_val) for a in curve["val"]], "test": [exact(a, n_test) for a in curve["test"]]}


def _round_stages(stages: Mapping[str, float]) -> dict[str, float]:
    return {k: round(float(v), 4) for k, v in stages.items()}


def write_run(trial: optuna.Trial, config: Mapping[str, Any], result: SeedResult, stages: Mapping[str, float]) -> None:
    """A single-run trial (design point): its resolved switches, metrics and stage timings."""
    trial.set_user_attr("config", dict(config))
    trial.set_user_attr("val_accuracy", result.val_accuracy)
    trial.set_user_attr("test_accuracy", result.test_accuracy)
    trial.set_user_attr("seconds", round(result.seconds, 4))
    trial.set_user_attr("n_eval", {"val": result.n_val, "test": result.n_test})
    trial.set_user_attr("stages", _round_stages(stages))
    if result.curve:
        trial.set_user_attr("curve", result.curve)


def write_diagnostics(trial: optuna.Trial, diagnostics: Mapping[str, Any]) -> None:
    """The method's diagnostics of a run (CGI: the source's mean log σ per group, the KL drift, and the
    source : target counts inside each generator's fit data), kept as they came."""
    if diagnostics:
        trial.set_user_attr("diagnostics", json.loads(json.dumps(dict(diagnostics))))


def diagnostics_columns(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """Flat columns for the tidy table: ``mean_log_sigma_middle``, ``fit_source_middle``, …"""
    diag = attrs.get("diagnostics") or {}
    out: dict[str, Any] = {f"mean_log_sigma_{g}": v for g, v in (diag.get("mean_log_sigma") or {}).items()}
    for g, counts in (diag.get("fit_ratio") or {}).items():
        out[f"fit_target_{g}"] = counts.get("target")
        out[f"fit_source_{g}"] = counts.get("source")
    return out


def write_generators(trial: optuna.Trial, summaries: Mapping[str, Mapping[str, Any]]) -> None:
    keep = ("kind", "n_components", "weights", "means", "converged", "bic", "warnings")
    trial.set_user_attr("generators", {name: {k: s.get(k) for k in keep} for name, s in summaries.items()})


def write_started(trial: optuna.Trial, case: str, config: Mapping[str, Any]) -> None:
    """A sampled trial's configuration, written before it runs (the dashboard shows what is running)."""
    trial.set_user_attr("schema", SCHEMA)
    trial.set_user_attr("case", case)
    trial.set_user_attr("config", dict(config))


def write_sampled(
    trial: optuna.Trial, seeds: list[SeedResult], stages: Mapping[str, float], pruned_after: int | None
) -> None:
    """A multi-seed sampled trial: per-seed results (with their benchmarks) and the means reports use."""
    n = len(seeds)
    trial.set_user_attr("seeds", [asdict(s) for s in seeds])
    trial.set_user_attr("seeds_run", n)
    if pruned_after is not None:
        trial.set_user_attr("pruned_after", pruned_after)
    trial.set_user_attr("test_accuracy", sum(s.test_accuracy for s in seeds) / n)
    with_bench = [s for s in seeds if s.benchmark]
    if with_bench:
        trial.set_user_attr(
            "transfer_gain", sum(s.val_accuracy - s.benchmark["val_accuracy"] for s in with_bench) / len(with_bench)
        )
        trial.set_user_attr(
            "transfer_gain_test",
            sum(s.test_accuracy - s.benchmark["test_accuracy"] for s in with_bench) / len(with_bench),
        )
    trial.set_user_attr("stages", _round_stages(stages))


def variant_titles(design: Mapping[str, Any] | None) -> dict[str, str]:
    """A stored design's variant labels -> the name reports show: every alias of a merged variant joined by
    " ≡ " (``K=1 ≡ generator=gaussian``), under its own label and under each alias."""
    out: dict[str, str] = {}
    for v in (design or {}).get("variants", []):
        title = " ≡ ".join([v["label"], *v.get("aliases", [])])
        out.update({name: title for name in [v["label"], *v.get("aliases", [])]})
    return out


def benchmark_seeds(study: optuna.Study) -> set[int]:
    """The seeds whose benchmark (baseline) a sampled study has cached."""
    prefix = benchmark_key("", 0).split(":", 1)[0] + ":"
    return {int(k.rsplit(":", 1)[1]) for k in study.user_attrs if k.startswith(prefix)}


def benchmark_key(case: str, seed: int) -> str:
    return f"benchmark:{case}:{seed}"


def cached_benchmark(study: optuna.Study, case: str, seed: int) -> dict[str, float] | None:
    return study.user_attrs.get(benchmark_key(case, seed))


def store_benchmark(study: optuna.Study, case: str, seed: int, metrics: dict[str, float]) -> None:
    """Deterministic per (case, seed, fidelity): a concurrent duplicate writes the same value."""
    study.set_user_attr(benchmark_key(case, seed), metrics)


@dataclass(frozen=True)
class TrialRecord:
    """A finished trial as reports see it."""

    number: int
    state: str
    value: float | None
    case: str | None
    variant: str | None
    technique: str | None
    seed: int | None
    config: dict[str, Any]
    seeds: tuple[SeedResult, ...]
    stages: dict[str, float]
    pruned_after: int | None
    fail_reason: str | None
    key: str | None
    attrs: dict[str, Any]

    @property
    def test_accuracy(self) -> float | None:
        return self.attrs.get("test_accuracy")

    @property
    def val_accuracy(self) -> float | None:
        return self.attrs.get("val_accuracy", self.value)


def read_trial(t: FrozenTrial) -> TrialRecord:
    a = t.user_attrs
    if a.get("schema") not in (None, *READABLE) or (a.get("seeds_run") and "seeds" not in a):
        raise AblateError(f"trial {t.number} has trial record schema {a.get('schema', 1)}; this version reads {SCHEMA}")
    if "seeds" in a:
        seeds = tuple(SeedResult(**s) for s in a["seeds"])
    elif "val_accuracy" in a:
        n_eval = a.get("n_eval") or {}
        seeds = (
            SeedResult(
                int(a["seed"]),
                a["val_accuracy"],
                a.get("test_accuracy"),  # absent when its worker died between the two writes (a FAIL)
                a.get("seconds", 0.0),
                n_eval.get("val"),
                n_eval.get("test"),
                curve=a.get("curve"),
            ),
        )
    else:
        seeds = ()
    return TrialRecord(
        number=t.number,
        state=t.state.name,
        value=t.value,
        case=a.get("case"),
        variant=a.get("variant"),
        technique=a.get("technique"),
        seed=int(a["seed"]) if "seed" in a else None,
        config=dict(a.get("config") or {}),
        seeds=seeds,
        stages=dict(a.get("stages") or {}),
        pruned_after=a.get("pruned_after"),
        fail_reason=a.get(FAIL_REASON),
        key=a.get(KEY),
        attrs=dict(a),
    )


# ------------------------------------------------------------------------------------------------ links
CONFIRMS = "confirms"  # Definition.extra key of a confirmation: what it confirms (source study, ranks, seeds)
CONFIRMED_BY = "confirmed_by"  # user attribute of a searched study: the names of its confirmations
PROVENANCE = "provenance"  # Definition.extra key: where, with what and by which command the study was made


def confirmation_source(definition: Definition) -> dict[str, Any] | None:
    """What a confirmation study confirms (``None`` for any other study): read from its definition."""
    link = definition.extra.get(CONFIRMS)
    return dict(link) if isinstance(link, Mapping) else None


STUDY_KINDS = ("sensitivity", "confirmation", "ablation", "table")


def study_kind(definition: Definition) -> str:
    """What a study is, in the one vocabulary everything that reads a study back uses (reports, their builders):
    ``sensitivity`` (a search), ``confirmation`` (a design that confirms a search), ``ablation`` (a designed
    ablation) or ``table`` (the paper's tables). Stored as ``Definition.kind`` (how the study runs: ``design``
    or ``sensitivity``) and the confirmation link; told apart here and nowhere else."""
    if confirmation_source(definition) is not None:
        return "confirmation"
    if definition.kind == "sensitivity":
        return "sensitivity"
    return "ablation" if str((definition.design or {}).get("name", "")).startswith("ablation") else "table"


def link_confirmation(source: optuna.Study, confirmation: str) -> None:
    """Point the searched study at a confirmation of it (the confirmation points back in its definition)."""
    names = confirmations_of(source)
    if confirmation not in names:
        source.set_user_attr(CONFIRMED_BY, [*names, confirmation])


def confirmations_of(study: optuna.Study) -> list[str]:
    """Names of the confirmation studies linked to a searched study, oldest first."""
    return [str(n) for n in study.user_attrs.get(CONFIRMED_BY) or []]


def method_labels(definition: Definition) -> tuple[str, str]:
    """How reports name the method that made a study and its baseline (from its provenance; studies made before
    methods were recorded are CGI's)."""
    made = (provenance_of(definition) or {}).get("method") or {}
    return str(made.get("title", "CGI")), str(made.get("baseline", "the no-transfer benchmark"))


def provenance_of(definition: Definition) -> dict[str, Any] | None:
    """The provenance recorded when the study was created (``None`` for studies made before it was recorded)."""
    prov = definition.extra.get(PROVENANCE)
    return dict(prov) if isinstance(prov, Mapping) else None


# ------------------------------------------------------------------------------------------------ discarded
DISCARDED = "discarded_result"  # study attribute prefix: a result a worker computed but could not store


def write_discarded(study: optuna.Study, number: int, note: Mapping[str, Any]) -> None:
    """Keep a result its trial no longer accepts (something else finished the trial first) as a study note.

    A finished Optuna trial accepts no attribute, so the note lives on the study, one key per trial and
    worker (``discarded_result:<trial>:<worker>``): concurrent workers never overwrite each other's notes.
    """
    study.set_user_attr(f"{DISCARDED}:{number}:{note.get('worker', '?')}", json.loads(json.dumps(dict(note))))


def discarded_results(study: optuna.Study) -> list[dict[str, Any]]:
    """Every discarded-result note of ``study`` (each with its ``trial`` number), in trial order."""
    notes = [dict(v) for k, v in study.user_attrs.items() if k.startswith(f"{DISCARDED}:") and isinstance(v, Mapping)]
    return sorted(notes, key=lambda n: n.get("trial", -1))
