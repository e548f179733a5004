"""Cross Generative Initialisation through the method API: switches, cases, presets and runs from ``crossgen``.

A request becomes a :class:`crossgen.config.RunConfig`; :meth:`CGIMethod.run` serves a batch with
``crossgen.runner.run`` one by one (the bit-for-bit reference) or ``run_many`` (stacked replicas).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from ablate.errors import AblateError
from ablate.method.api import Method, Outcome, Preset, Request
from ablate.method.switches import Switches, switches_of
from crossgen.config import CASES, REGISTRY, TECHNIQUES, Fidelity, Registry, RunConfig
from crossgen.errors import ConfigError

DEFINITIONS_PACKAGE = "ablate_studies"


class CGIMethod(Method):
    """The paper's method. ``registry``: a copy with extra switches (how a test adds a throwaway one)."""

    name = "cgi"
    version = "0.1.0"
    title = "CGI"
    baseline_label = "the no-transfer benchmark"
    description = "Cross Generative Initialisation (CGI) of Bayesian neural networks"
    cases = CASES
    variants = TECHNIQUES
    reference = "cgi"
    baseline = "bnn"
    tables = ("table1", "table2")
    default_preset = "quick"
    case_help = "Transfer case, source_target (T1M1_T2M2 = task 1 model 1 -> task 2 model 2)."
    variant_help = "Transfer technique."
    devices = ("cpu", "cuda")

    def __init__(self, registry: Registry = REGISTRY, data_dir: str | None = None) -> None:
        self.registry = registry
        self.data_dir = data_dir
        self._switches = Switches(tuple(s for g, cls in registry.groups for s in switches_of(cls, g)))
        self._tasks: dict[str, Any] = {}

    # -------------------------------------------------------------------------------------- declarations
    def switches(self) -> Switches:
        return self._switches

    def definitions(self) -> Traversable | Path:
        try:
            return resources.files(DEFINITIONS_PACKAGE)
        except ModuleNotFoundError:
            raise AblateError(
                f"this installation lacks CGI's study definitions (package {DEFINITIONS_PACKAGE}); "
                "set ABLATE_STUDIES_DIR to a folder holding fidelity.toml"
            ) from None

    def preset(self, name: str, values: Mapping[str, Any]) -> Preset:
        try:
            fidelity = Fidelity.from_dict(name, dict(values))
            self.registry.configs({}, fidelity)  # its switch values must be valid switches
        except (ConfigError, TypeError) as exc:
            raise AblateError(str(exc)) from None
        return Preset(name, {k: v for k, v in asdict(fidelity).items() if k != "name"})

    def _config(self, variant: str, switches: Mapping[str, Any], **kw: Any) -> RunConfig:
        try:
            return RunConfig(technique=variant, **kw, **self.registry.configs(dict(switches)))
        except (ConfigError, TypeError) as exc:
            raise AblateError(str(exc)) from None

    def check(self, variant: str, switches: Mapping[str, Any]) -> None:
        self._config(variant, switches, case=CASES[0])

    def check_device(self, switches: Mapping[str, Any], device: str) -> None:
        """bf16 where the hardware would emulate it is refused once, before a study starts, not in every trial."""
        from crossgen.train import require_precision

        try:
            require_precision(switches.get("precision", "fp32"), device)
        except ConfigError as exc:
            raise AblateError(str(exc)) from None

    def canonical(self, variant: str, switches: Mapping[str, Any]) -> dict[str, Any]:
        return self._config(variant, switches, case=CASES[0]).canonical().switch_values(self.registry)

    def stacks(self, device: str) -> bool:
        """On a GPU only: there a 10-seed design point ran 5.9-7.2x faster per run; on this project's 2-core CPU
        1.05-1.23x, too little to leave the bit-for-bit reference path (docs/benchmarks.md)."""
        return device.startswith("cuda")

    def provenance(self, preset: Preset, data_dir: str | None = None) -> dict[str, Any]:
        return {"data": data_checksum(str(preset.values.get("data", "mnist")), data_dir or self.data_dir)}

    def commands(self) -> dict[str, Any]:
        from ablate.cli.options import with_switch_options
        from ablate.methods.cgi.commands import bench_cmd, data_app, run_cmd

        return {"run": with_switch_options(run_cmd, self.switches()), "bench": bench_cmd, "data": data_app}

    def __getstate__(self) -> dict[str, Any]:
        """Worker processes get the method without the tasks this process loaded (each loads its own)."""
        return {**self.__dict__, "_tasks": {}}

    # ---------------------------------------------------------------------------------------------- runs
    def fidelity(self, preset: Preset) -> Fidelity:
        return Fidelity(name=preset.name, **{k: v for k, v in preset.values.items() if k != "name"})

    def run_config(self, request: Request) -> RunConfig:
        """The crossgen configuration of a request (switch values: the preset's, then the request's)."""
        fidelity = self.fidelity(request.preset)
        return RunConfig(
            case=request.case,
            technique=request.variant,
            seed=request.seed,
            fidelity=fidelity,
            device=request.device,
            data_dir=self.data_dir,
            record_generators=request.details,
            record_curve=request.curve,
            **self.registry.configs(dict(request.switches), fidelity),
        )

    def tasks(self, preset: Preset, log: Callable[..., Any] = print) -> dict[str, Any]:
        """The two tasks at a preset, loaded once per process (the MNIST arrays are the expensive part)."""
        from crossgen.errors import CrossgenError
        from crossgen.runner import load_run_tasks

        if preset.name not in self._tasks:
            config = RunConfig(case=CASES[0], technique="none", fidelity=self.fidelity(preset), data_dir=self.data_dir)
            try:
                self._tasks[preset.name] = load_run_tasks(config, log=log)
            except CrossgenError as exc:  # a missing or broken data file: the user's to fix, in one line
                raise AblateError(str(exc)) from None
        return self._tasks[preset.name]

    def run(
        self, requests: Sequence[Request], *, stack: bool = False, log: Callable[..., Any] = print
    ) -> list[Outcome | Exception]:
        """Stacked: every request's fits as one model (``crossgen.runner.run_many``); otherwise one by one through
        :meth:`run_one` (the base class's loop), the bit-for-bit reference."""
        if not stack or not requests:
            return super().run(requests, stack=stack, log=log)
        from crossgen.runner import run_many

        configs = [self.run_config(r) for r in requests]
        hooks = [r.on_epoch for r in requests]
        results = run_many(configs, tasks=self.tasks(requests[0].preset, log=log), on_target_epoch=hooks, log=log)
        return [r if isinstance(r, Exception) else outcome(r) for r in results]

    def run_one(self, request: Request, *, log: Callable[..., Any] = print) -> Outcome:
        from crossgen.runner import run

        tasks = self.tasks(request.preset, log=log)
        return outcome(run(self.run_config(request), tasks=tasks, on_target_epoch=request.on_epoch, log=log))


DIAGNOSTICS = ("mean_log_sigma", "fit_ratio")
"""Run artefacts kept in the record: the source's mean log σ per group (the KL drift) and the source : target
counts inside each generator's fit data (a hidden knob otherwise)."""


def outcome(result: Any) -> Outcome:
    """A :class:`crossgen.runner.RunResult` as the method API's :class:`Outcome`."""
    curve = None
    if "curve_val" in result.history:
        curve = {"val": result.history["curve_val"], "test": result.history["curve_test"]}
    return Outcome(
        seed=result.seed,
        val_accuracy=result.val_accuracy,
        test_accuracy=result.test_accuracy,
        n_val=result.n_val,
        n_test=result.n_test,
        seconds=result.seconds,
        stages=dict(result.stages),
        curve=curve,
        diagnostics={k: result.artefacts[k] for k in DIAGNOSTICS if k in result.artefacts},
        generators=result.artefacts.get("generators"),
    )


def data_checksum(source: str, data_dir: str | None = None) -> dict[str, Any]:
    """The data file a fidelity reads and its SHA-256 (MNIST: also the pinned checksum its source was checked with)."""
    from ablate.execution.provenance import sha256_file
    from crossgen import data

    out: dict[str, Any] = {"source": source}
    if source == "mnist":
        path = Path(data_dir).expanduser() if data_dir else data.default_data_dir()
        path = path / data.MNIST_NPZ
        out["verified_source_sha256"] = data.MNIST_PKL_SHA256
    elif source == "digits":
        import sklearn.datasets

        path = Path(sklearn.datasets.__file__).parent / "data" / "digits.csv.gz"
    else:
        out["path"] = source
        return out
    out["path"] = str(path)
    out["sha256"] = sha256_file(path) if path.is_file() else None
    return out
