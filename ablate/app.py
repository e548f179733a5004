"""The application API the CLI is thin over: what each running command does, on plain arguments.

Each ``plan_*`` function checks everything its command names (cases, presets, space and design files, switch
settings, the device, every study name on the storage, report folders) before anything is written, and
returns the plans to execute; a refusal is one :class:`~ablate.errors.AblateError` line (exit 2 at the CLI).
``ablate.cli`` parses options, runs the plans with a progress display, and prints; a notebook or a script
calls the same functions and :func:`ablate.execution.studies.execute`. Why here and not in the commands: a
check that lives in a command is a check a script skips, and the order (all checks, then the first write) is
the contract of every command (docs/cli.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import optuna

from ablate import record
from ablate.errors import AblateError
from ablate.execution.plans import ConfirmationPlan, DesignPlan, SensitivityPlan, StudyPlan, settle_search
from ablate.execution.studies import check_new_names, open_study
from ablate.experiment import confirm, presets
from ablate.experiment.designs import expand_cases, load_ablation_design, load_table_design, parse_settings
from ablate.experiment.names import ablation_study_names, derived_name, sensitivity_study_names
from ablate.experiment.space import load_space
from ablate.method import Method, Request


@dataclass(frozen=True, kw_only=True)
class Execution:
    """How a command's studies run: the options every running command shares (the fields of
    :class:`~ablate.execution.plans.StudyPlan` that are not what is studied)."""

    workers: int = 1
    threads: int = 1
    device: str = "cpu"
    stack: str = "auto"
    curves: bool = True
    join: bool = False
    join_wait: float = 300.0
    heartbeat_interval: int | None = 60
    grace_period: int | None = None
    timeout: float | None = None


@dataclass(frozen=True)
class Searches:
    """What ``ablate study`` runs: one sensitivity plan per case, and the notes on how its search was settled."""

    plans: list[SensitivityPlan]
    notes: tuple[str, ...]


def check_device(method: Method, device: str) -> None:
    """A device the method cannot use, or this machine does not have, is refused before anything runs."""
    if device != "cpu" and device != "cuda" and not device.startswith("cuda:"):
        raise AblateError(f"--device {device!r} is not one of cpu, cuda, cuda:N")
    if device.startswith("cuda"):
        if "cuda" not in method.devices:
            raise AblateError(f"--device {device}: method {method.name} runs on {', '.join(method.devices)}")
        import torch

        if not torch.cuda.is_available():
            raise AblateError(f"--device {device}: no CUDA device is available on this machine")


def settings_for(method: Method, settings: Sequence[str] | None, device: str) -> dict[str, Any]:
    """``--set NAME=VALUE`` as validated switch values, and what the method cannot run on this device (CGI: bf16
    without bf16 units) refused once, here."""
    base = parse_settings(list(settings or []), method)
    method.check_device(base, device)
    return base


def storage_url(storage: str | None, *, wait: float = 0.0) -> str:
    """The storage URL, reachable: refused at once (a wrong URL, in one line), or after ``wait`` seconds for a
    ``--join`` worker, whose server may be restarting."""
    from ablate.execution.storages import check_reachable, parse_storage, resolve_url

    url = resolve_url(storage)
    check_reachable(parse_storage(url), wait=wait)
    return url


def _check_names(url: str, names: Sequence[str], report: bool) -> None:
    check_new_names(url, names)
    if report:
        from ablate.report.reports import check_report_dirs

        check_report_dirs(list(names), None)


def check_run(
    method: Method, *, case: str, technique: str, switches: dict[str, Any] | None = None, device: str = "cpu"
) -> None:
    """What one run names: a case and a variant of the method, a device it can use, switch values this device
    can run (CGI's own ``run`` command checks through here too)."""
    if case not in method.cases:
        raise AblateError(f"--case {case!r} is not one of {', '.join(method.cases)}")
    if technique not in method.variants:
        raise AblateError(f"--technique {technique!r} is not one of {', '.join(method.variants)}")
    check_device(method, device)
    method.check_device(dict(switches or {}), device)


def plan_run(
    method: Method,
    *,
    case: str,
    technique: str,
    seed: int,
    fidelity: str,
    switches: dict[str, Any] | None = None,
    device: str = "cpu",
) -> Request:
    """``ablate run``: one run of one variant, as the method will be asked for it (``method.run([request])``).

    Parameters
    ----------
    method
        The method (:func:`ablate.method.load_method`).
    case, technique, seed
        One of ``method.cases``, one of ``method.variants``, and the seed.
    fidelity
        A preset of the method's fidelity file.
    switches
        Switch values that differ from the defaults, validated by the method.
    device
        ``cpu``, ``cuda`` or ``cuda:N``.

    Returns
    -------
    Request
        Checked, with the preset's values resolved.
    """
    from ablate.experiment.objective import resolved

    check_run(method, case=case, technique=technique, switches=switches, device=device)
    preset = presets.load_fidelity(fidelity, method=method)
    values = resolved(method, preset, dict(switches or {}))
    method.check(technique, values)
    return Request(case, technique, seed, values, preset, device=device)


def plan_searches(
    method: Method,
    *,
    case: str,
    trials: int,
    seeds: int,
    fidelity: str,
    sampler: str = "tpe",
    pruner: str | None = None,
    space: Path | None = None,
    storage: str | None = None,
    study_name: str | None = None,
    settings: Sequence[str] | None = None,
    sampler_seed: int = 0,
    confirm_top: int = 0,
    report: bool = False,
    execution: Execution = Execution(),
) -> Searches:
    """``ablate study``: a sensitivity search per case (``case`` may be ``all``).

    Parameters
    ----------
    method
        The method whose reference is searched.
    case
        One of ``method.cases``, or ``all`` (one study each).
    trials, seeds
        Finished trials each study holds, and seeds per trial (their mean is the objective).
    fidelity
        A preset of the method's fidelity file.
    sampler, pruner
        Optuna's, by name (the pruner by default from ``seeds``: :func:`~ablate.execution.plans.settle_search`).
    space
        A search-space file (default: the method's).
    storage, study_name
        Where, and a name instead of the derived one (with several cases, ``NAME-CASE`` each).
    settings
        ``NAME=VALUE`` switch values every run shares.
    confirm_top
        Confirmations to follow (it names the studies), ``report`` their report folders checked too.
    execution
        How the studies run.

    Returns
    -------
    Searches
        One plan per case, and the notes to show (a lowered grid size, a pruner that cannot act).
    """
    cases = expand_cases(case, method)
    check_device(method, execution.device)
    fid = presets.load_fidelity(fidelity, method=method)
    sp = load_space(space, method)
    base = settings_for(method, settings, execution.device)
    search = settle_search(sampler, pruner, seeds=seeds, trials=trials, space=sp, base=base)
    names = sensitivity_study_names(cases, study_name, fidelity, base, confirm_top)
    url = storage_url(storage, wait=execution.join_wait if execution.join else 0.0)
    _check_names(url, list(names.values()), report)
    plans = [
        SensitivityPlan(
            name=names[c],
            storage=url,
            fidelity=fid,
            case=c,
            space=sp,
            trials=search.trials,
            seeds=seeds,
            sampler_name=search.sampler,
            pruner_name=search.pruner,
            sampler_seed=sampler_seed,
            base=base,
            method=method,
            **asdict(execution),
        )
        for c in cases
    ]
    return Searches(plans, tuple(search.notes))


def plan_ablations(
    method: Method,
    *,
    case: str,
    seeds: int,
    fidelity: str,
    design: str = "ofat",
    design_file: Path | None = None,
    storage: str | None = None,
    study_name: str | None = None,
    settings: Sequence[str] | None = None,
    report: bool = False,
    execution: Execution = Execution(),
) -> list[DesignPlan]:
    """``ablate ablation``: the designed ablation on each case (``case`` may be ``all``).

    Parameters
    ----------
    design, design_file
        ``ofat`` or ``factorial``, from the method's design file or ``design_file`` (whose stem names the study).
    case, seeds, fidelity, storage, study_name, settings, report, execution
        As for :func:`plan_searches`; an ablation runs until its points are done (no timeout).

    Returns
    -------
    list of DesignPlan
        One per case.
    """
    cases = expand_cases(case, method)
    check_device(method, execution.device)
    fid = presets.load_fidelity(fidelity, method=method)
    base = settings_for(method, settings, execution.device)
    dsg = load_ablation_design(design, design_file, method).with_base(base, method)
    stem = dsg.name if design_file is None else f"{dsg.name}-{design_file.stem}"
    names = ablation_study_names(stem, cases, study_name, fidelity, base)
    url = storage_url(storage, wait=execution.join_wait if execution.join else 0.0)
    _check_names(url, list(names.values()), report)
    settings_ = {**asdict(execution), "timeout": None}
    return [
        DesignPlan(
            name=names[c], storage=url, fidelity=fid, design=dsg, cases=(c,), seeds=seeds, method=method, **settings_
        )
        for c in cases
    ]


def plan_table(
    method: Method,
    *,
    table: str,
    seeds: int,
    fidelity: str,
    storage: str | None = None,
    out_dir: Path | None = None,
    settings: Sequence[str] | None = None,
    execution: Execution = Execution(),
) -> tuple[DesignPlan, Path]:
    """``ablate reproduce``: one of the method's tables on every case, and the folder its report goes to
    (created and proved writable, after the storage is known to be reachable)."""
    from ablate.report import check_out_dir

    if table not in method.tables:
        raise AblateError(f"table {table!r} is not one of {', '.join(method.tables)}")
    check_device(method, execution.device)
    fid = presets.load_fidelity(fidelity, method=method)
    base = settings_for(method, settings, execution.device)
    design = load_table_design(table, method=method).with_base(base, method)
    label = derived_name("table", fidelity, design=table, settings=base)
    out_path = out_dir or presets.runs_dir() / label
    url = storage_url(storage)  # before the folder is made: a refused storage leaves nothing behind
    check_new_names(url, [label])
    check_out_dir(out_path)
    settings_ = {**asdict(execution), "join": False, "timeout": None}
    plan = DesignPlan(
        name=label,
        storage=url,
        fidelity=fid,
        design=design,
        cases=method.cases,
        seeds=seeds,
        method=method,
        **settings_,
    )
    return plan, out_path


def find_searches(method: Method, url: str, names: Sequence[str], case: str | None) -> list[optuna.Study]:
    """The sensitivity searches a confirmation names: by study name, and every one of ``case`` (or ``all``)."""
    import contextlib

    from ablate.execution.storages import open_storage

    if not names and not case:
        raise AblateError("name one or more sensitivity studies, or pass --case CASE|all")
    st = open_storage(url, heartbeat_interval=None, create=False)
    sources = [load_study(url, name, st) for name in names]
    if case:
        wanted = set(expand_cases(case, method))
        for name in optuna.get_all_study_names(st):
            study = optuna.load_study(study_name=name, storage=st)
            if record.kind_of(study) != "sensitivity" or any(s.study_name == name for s in sources):
                continue
            with contextlib.suppress(AblateError):
                if record.read_definition(study).case in wanted:
                    sources.append(study)
        if not sources:
            raise AblateError(f"no sensitivity study of --case {case} in {url}")
    return sources


def load_study(url: str, name: str, storage: Any = None) -> optuna.Study:
    """A study of the storage by name (``storage``: the one already open for ``url``); one line when there is none."""
    from ablate.execution.storages import open_storage

    storage = storage or open_storage(url, heartbeat_interval=None, create=False)
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        raise AblateError(f"no study named {name!r} in {url}") from None


def find_studies(method: Method, url: str, names: Sequence[str], case: str | None) -> list[optuna.Study]:
    """The studies a report names: by name, and every one whose name holds a case of ``case`` (or ``all``); each
    found and readable as an ablate study before any folder is made or report written."""
    from ablate.execution.storages import open_storage

    if not names and not case:
        raise AblateError("name one or more studies, or pass --case CASE|all")
    st = open_storage(url, heartbeat_interval=None, create=False)
    wanted = list(names)
    if case:
        cases = expand_cases(case, method)
        wanted += [n for n in optuna.get_all_study_names(st) if any(c in n for c in cases) and n not in wanted]
    if not wanted:
        raise AblateError(f"no studies found for --case {case} in {url}")
    found = []
    for name in wanted:
        found.append(load_study(url, name, st))
        record.read_definition(found[-1])  # one line for a study plain Optuna (or a newer ablate) made
    return found


def plan_confirmations(
    method: Method,
    *,
    studies: Sequence[str] = (),
    case: str | None = None,
    top: int,
    seeds: int,
    fidelity: str | None = None,
    storage: str | None = None,
    execution: Execution = Execution(),
) -> list[tuple[optuna.Study, StudyPlan]]:
    """``ablate confirm``: each search to confirm and how its confirmation runs (at the search's preset unless
    ``fidelity`` names another); every confirmation's name checked before the first is created."""
    check_device(method, execution.device)
    fid = presets.load_fidelity(fidelity, method=method) if fidelity else None
    url = storage_url(storage)
    sources = find_searches(method, url, studies, case)
    planned = [confirm.plan(source, top=top, seeds=seeds, fidelity=fid, method=method) for source in sources]
    check_new_names(url, [p.name for p in planned])  # every check before the first write: storage as it was
    settings_ = {**asdict(execution), "join": False, "timeout": None}
    return [
        (
            source,
            StudyPlan(
                name=source.study_name,
                storage=url,
                fidelity=fid or confirm.stored_preset(method, record.read_definition(source).fidelity),
                method=method,
                **settings_,
            ),
        )
        for source in sources
    ]


def prepare_confirmation(
    source: optuna.Study, *, top: int, seeds: int, fidelity: Any, plan: StudyPlan
) -> ConfirmationPlan:
    """Create (or resume) the confirmation of one finished search; it runs as the search did (``plan``'s execution
    settings), on the design stored at creation when it is resumed."""
    conf = confirm.plan(source, top=top, seeds=seeds, fidelity=fidelity, method=plan.method)
    settings_ = {**plan.execution(), "join": False, "timeout": None}

    def typed(c: confirm.Confirmation) -> ConfirmationPlan:
        return ConfirmationPlan(
            name=c.name, fidelity=c.fidelity, design=c.design, cases=(c.case,), seeds=seeds, link=c.link, **settings_
        )

    study = open_study(typed(conf))
    if record.DEFINITION in study.user_attrs:
        existing = record.read_definition(study)
        conf = confirm.plan(source, top=top, seeds=seeds, fidelity=fidelity, existing=existing, method=plan.method)
    confirmation = typed(conf)
    confirm.create(study, source, confirmation)
    return confirmation


def write_reports_of(names: Sequence[str], url: str) -> tuple[str, ...]:
    """``--report``: the reports of the studies just run, in their default folders; the folders written."""
    from ablate.execution.storages import open_storage
    from ablate.report import FORMATS
    from ablate.report.reports import write_reports

    storage = open_storage(url, heartbeat_interval=None, create=False)
    studies = [optuna.load_study(study_name=n, storage=storage) for n in names]
    folders = {str(w.paths[0].parent) + "/": None for w in write_reports(studies, formats=FORMATS) if w.paths}
    return tuple(folders)
