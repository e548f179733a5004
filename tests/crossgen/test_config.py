"""Tests for crossgen.config and the layer-count reading in crossgen.nets.

Every invalid value must fail at construction with a ConfigError whose message names the field.
"""

from __future__ import annotations

import math

import pytest

from crossgen.config import (
    BAYESIAN_TECHNIQUES,
    CASES,
    DETERMINISTIC_TECHNIQUES,
    REGISTRY,
    TECHNIQUES,
    BNNConfig,
    Case,
    CGIConfig,
    DistillConfig,
    Fidelity,
    RunConfig,
)
from crossgen.errors import ConfigError, CrossgenError
from crossgen.nets import MLP, layer_sizes, middle_layer_index

# ------------------------------------------------------------------------------------------------ cases


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("T1M1_T2M2", ("T1", "M1", "T2", "M2")),
        ("T2M1_T1M2", ("T2", "M1", "T1", "M2")),
        ("T1M2_T2M1", ("T1", "M2", "T2", "M1")),
        ("T2M2_T1M1", ("T2", "M2", "T1", "M1")),
    ],
)
def test_case_parse_the_four_paper_cases(name: str, expected: tuple[str, str, str, str]) -> None:
    case = Case.parse(name)
    assert case.name == name
    assert (case.source_task, case.source_model, case.target_task, case.target_model) == expected


def test_cases_are_exactly_the_papers_four() -> None:
    assert set(CASES) == {"T1M1_T2M2", "T2M1_T1M2", "T1M2_T2M1", "T2M2_T1M1"}
    # source and target always differ in both task and model
    for name in CASES:
        c = Case.parse(name)
        assert c.source_task != c.target_task
        assert c.source_model != c.target_model


@pytest.mark.parametrize("bad", ["T1M1_T1M2", "T1M1", "t1m1_t2m2", "T3M1_T2M2", "", "T1M1_T2M2 "])
def test_case_parse_unknown_case(bad: str) -> None:
    with pytest.raises(ConfigError, match="case="):
        Case.parse(bad)


# --------------------------------------------------------------------------------------------- fidelity


def test_fidelity_from_dict_roundtrip() -> None:
    fid = Fidelity.from_dict("smoke", {"data": "digits", "width": 16, "epochs": 2, "max_train": 100})
    assert fid.name == "smoke"
    assert (fid.data, fid.width, fid.epochs, fid.max_train) == ("digits", 16, 2, 100)
    assert fid.source_epochs == Fidelity().source_epochs  # untouched keys keep their defaults


def test_fidelity_from_dict_unknown_key_names_it() -> None:
    with pytest.raises(ConfigError, match="widht"):
        Fidelity.from_dict("smoke", {"widht": 16})


def test_fidelity_from_dict_rejects_name_key() -> None:
    # "name" comes from the table header, never from inside it
    with pytest.raises(ConfigError, match="name"):
        Fidelity.from_dict("smoke", {"name": "other"})


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("width", 0),
        ("width", -3),
        ("width", 2.5),
        ("width", True),
        ("epochs", 0),
        ("epochs", -1),
        ("source_epochs", 0),
        ("batch_size", 0),
        ("eval_samples", 0),
        ("max_train", 0),
        ("max_train", -5),
        ("max_eval", 0),
        ("lr", 0.0),
        ("lr", -1e-3),
        ("lr", math.nan),
        ("lr", math.inf),
        ("bnn_lr", 0),
        ("bnn_lr", "0.01"),
    ],
)
def test_fidelity_rejects_nonpositive_and_nonnumeric(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=rf"fidelity\.{field}="):
        Fidelity(**{field: value})


@pytest.mark.parametrize("data", ["", None, 3])
def test_fidelity_rejects_bad_data(data: object) -> None:
    with pytest.raises(ConfigError, match="fidelity.data"):
        Fidelity(data=data)  # type: ignore[arg-type]


def test_fidelity_accepts_none_limits() -> None:
    fid = Fidelity(max_train=None, max_eval=None)
    assert fid.max_train is None and fid.max_eval is None


# ---------------------------------------------------------------------------------- bnn / distill / cgi


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"prior_sigma": 0.0}, "prior_sigma"),
        ({"prior_sigma": -1.0}, "prior_sigma"),
        ({"init_log_sigma": math.inf}, "init_log_sigma"),
        ({"init_log_sigma": math.nan}, "init_log_sigma"),
        ({"init_log_sigma_jitter": -0.1}, "init_log_sigma_jitter"),
    ],
)
def test_bnn_config_rejects(kwargs: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        BNNConfig(**kwargs)


def test_bnn_config_allows_zero_jitter() -> None:
    assert BNNConfig(init_log_sigma_jitter=0.0).init_log_sigma_jitter == 0.0


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"lam": -1.0}, "lam"), ({"lam": math.nan}, "lam"), ({"temperature": 0.0}, "temperature")],
)
def test_distill_config_rejects(kwargs: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        DistillConfig(**kwargs)


def test_distill_config_allows_zero_lambda() -> None:
    assert DistillConfig(lam=0.0).lam == 0.0


def test_switch_defaults_are_first_choices_and_valid() -> None:
    cfg = RunConfig(case="T1M1_T2M2", technique="cgi")
    values = cfg.switch_values()
    for s in REGISTRY.switches:
        if s.choices:
            assert values[s.name] == s.choices[0], s.name
        s.check(values[s.name])


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"K": 0}, "K="),
        ({"K": -1}, "K="),
        ({"M": 0}, "M="),
        ({"M": 1.5}, "M="),
        ({"init": "warm"}, "init="),
        ({"generator": "vae"}, "generator="),
        ({"scope": "global"}, "scope="),
        ({"bootstrap": "parametric"}, "bootstrap="),
        ({"transfer": "sigma"}, "transfer="),
        ({"covariance_type": "banded"}, "covariance_type="),
        ({"target_warmup_epochs": -1}, "target_warmup_epochs="),
        ({"max_fit_points": 0}, "max_fit_points="),
        ({"reg_covar": 0.0}, "reg_covar="),
    ],
)
def test_cgi_config_rejects_and_names_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=field) as excinfo:
        CGIConfig(**kwargs)
    assert "\n" not in str(excinfo.value)


def test_cgi_config_m_smaller_than_k_rejected_for_gmm_only() -> None:
    with pytest.raises(ConfigError, match="M=2 is smaller than K=3"):
        CGIConfig(M=2, K=3, generator="gmm")
    # a single Gaussian ignores K, so M < K is fine there
    assert CGIConfig(M=1, K=3, generator="gaussian").M == 1
    assert CGIConfig(M=3, K=3).K == 3


def test_config_error_is_a_value_error_and_crossgen_error() -> None:
    with pytest.raises(ValueError):
        CGIConfig(K=0)
    with pytest.raises(CrossgenError):
        CGIConfig(K=0)


# -------------------------------------------------------------------------------------------- runconfig


def test_runconfig_valid_and_properties() -> None:
    cfg = RunConfig(case="T2M2_T1M1", technique="cgi", seed=3)
    assert cfg.case_spec == Case.parse("T2M2_T1M1")
    assert cfg.bayesian
    assert not cfg.with_(technique="none").bayesian
    assert cfg.with_(seed=4).seed == 4 and cfg.seed == 3  # frozen: with_ returns a copy
    d = cfg.to_dict()
    assert d["case"] == "T2M2_T1M1" and d["technique"] == "cgi" and d["cgi"]["M"] == CGIConfig().M
    assert set(TECHNIQUES) == set(DETERMINISTIC_TECHNIQUES) | set(BAYESIAN_TECHNIQUES)
    assert set(TECHNIQUES) == {"none", "feature", "distill", "bnn", "cgi"}


@pytest.mark.parametrize("technique", ["transfer", "CGI", "", "finetune"])
def test_runconfig_unknown_technique(technique: str) -> None:
    with pytest.raises(ConfigError, match="technique="):
        RunConfig(case="T1M1_T2M2", technique=technique)


@pytest.mark.parametrize("device", ["gpu", "tpu", "cuda0", "mps", ""])
def test_runconfig_unknown_device(device: str) -> None:
    with pytest.raises(ConfigError, match="device="):
        RunConfig(case="T1M1_T2M2", technique="none", device=device)


@pytest.mark.parametrize("device", ["cpu", "cuda", "cuda:1"])
def test_runconfig_known_devices(device: str) -> None:
    assert RunConfig(case="T1M1_T2M2", technique="none", device=device).device == device


@pytest.mark.parametrize("device", [None, 0, "cuda:", "cuda:x", "cuda:-1"])
def test_runconfig_malformed_device_is_a_config_error(device: object) -> None:
    with pytest.raises(ConfigError, match="device="):
        RunConfig(case="T1M1_T2M2", technique="none", device=device)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [None, "-5"])
def test_bnn_config_non_numeric_init_log_sigma_is_a_config_error(value: object) -> None:
    with pytest.raises(ConfigError, match="init_log_sigma="):
        BNNConfig(init_log_sigma=value)  # type: ignore[arg-type]


@pytest.mark.parametrize("seed", [-1, 1.0, True, "0"])
def test_runconfig_bad_seed(seed: object) -> None:
    with pytest.raises(ConfigError, match="seed="):
        RunConfig(case="T1M1_T2M2", technique="none", seed=seed)  # type: ignore[arg-type]


def test_runconfig_unknown_case() -> None:
    with pytest.raises(ConfigError, match="case="):
        RunConfig(case="T1M1_T1M1", technique="none")


# ----------------------------------------------------------------------------------------- layer sizes


def test_experiment1_layer_counts() -> None:
    m1 = layer_sizes("M1", 784, 8, 400, bayesian=False)
    m2 = layer_sizes("M2", 784, 2, 400, bayesian=False)
    assert m1 == [784, 400, 400, 400, 400, 400, 8]  # five hidden layers
    assert m2 == [784, 400, 2]  # one hidden layer
    assert len(MLP(layer_sizes("M1", 64, 8, 16, bayesian=False)).hidden) == 5
    assert len(MLP(layer_sizes("M2", 64, 2, 16, bayesian=False)).hidden) == 1


def test_experiment2_layer_counts() -> None:
    m1 = layer_sizes("M1", 784, 8, 400, bayesian=True)
    m2 = layer_sizes("M2", 784, 2, 400, bayesian=True)
    assert len(m1) - 1 == 5  # "a five layer BNN": five weight layers
    assert len(m2) - 1 == 3  # "a three layer BNN": three weight layers
    assert m1[0] == m2[0] == 784 and (m1[-1], m2[-1]) == (8, 2)
    assert set(m1[1:-1]) == set(m2[1:-1]) == {400}


@pytest.mark.parametrize("bayesian", [False, True])
def test_layer_sizes_unknown_model(bayesian: bool) -> None:
    with pytest.raises(ConfigError, match="model="):
        layer_sizes("M3", 64, 2, 16, bayesian=bayesian)


@pytest.mark.parametrize(("n_hidden", "index"), [(1, 0), (2, 0), (3, 1), (4, 1), (5, 2)])
def test_middle_layer_index(n_hidden: int, index: int) -> None:
    assert middle_layer_index(n_hidden) == index


def test_mlp_features_come_from_the_middle_hidden_layer() -> None:
    import torch

    torch.manual_seed(0)
    net = MLP(layer_sizes("M1", 6, 3, 5, bayesian=False))
    x = torch.rand(4, 6)
    h = x
    for layer in net.hidden[:3]:  # the third of five hidden layers
        h = torch.relu(layer(h))
    torch.testing.assert_close(net.features(x), h, rtol=0, atol=0)
    assert net.features(x).shape == (4, 5)


# ---------------------------------------------------------------------------------- the switch registry


def test_switch_parse_handles_named_values_none_and_bools() -> None:
    assert REGISTRY.get("M").parse("all") == "all" and REGISTRY.get("M").parse("300") == 300
    assert REGISTRY.get("max_fit_points").parse("none") == "none"
    assert REGISTRY.get("target_epochs").parse("none") is None and REGISTRY.get("target_epochs").parse("7") == 7
    assert REGISTRY.get("clip_log_sigma").parse("true") is True
    assert REGISTRY.get("init_log_sigma").parse("-2.3") == -2.3
    for name, text, message in [
        ("M", "some", "M='some' must be an integer >= 1 or all"),
        ("M", "0", "M=0 must be an integer >= 1 or all"),
        ("target_epochs", "0", "target_epochs=0 must be an integer >= 1 or none"),
        ("bnn_lr", "0", "bnn_lr=0.0 must be a finite number > 0 or none"),
        ("transfer", "sigma", "transfer='sigma' is not one of mu_sigma, mu"),
        ("clip_log_sigma", "yes", "clip_log_sigma='yes' must be true or false"),
    ]:
        with pytest.raises(ConfigError) as info:
            REGISTRY.get(name).parse(text)
        assert str(info.value) == message


def test_registry_names_are_unique_and_split_refuses_unknown() -> None:
    names = REGISTRY.names()
    assert len(names) == len(set(names))
    assert REGISTRY.split({"M": 5, "prior_sigma": 0.5})["cgi"] == {"M": 5}
    with pytest.raises(ConfigError, match="'nope' is not a switch"):
        REGISTRY.split({"nope": 1})


def test_fidelity_switches_are_a_base_that_explicit_values_override() -> None:
    fid = Fidelity(name="x", switches={"init_log_sigma": -2.3, "M": 100})
    configs = REGISTRY.configs({"M": 50}, fid)
    assert configs["bnn"].init_log_sigma == -2.3 and configs["cgi"].M == 50
    with pytest.raises(ConfigError, match="init_log_sigma"):
        REGISTRY.configs({}, Fidelity(name="x", switches={"init_log_sigma": "low"}))
