"""The switch vocabulary (ablate.method.switches): what a declaration allows, how it says so, and how text becomes a
value. Every CLI option, ``--set``, space bound and design flip of every method goes through these few lines."""

from __future__ import annotations

import dataclasses

import pytest

from ablate.errors import AblateError
from ablate.method.switches import KINDS, SWITCH, Switch, SwitchError, Switches, switch, switches_of


@dataclasses.dataclass(frozen=True)
class Settings:
    M: int = switch(3, "Points.", low=1, special=("all",))
    rate: float = switch(0.5, "A rate.", low=0, low_open=True, high=1)
    scale: float | None = switch(None, "From the preset.", nullable=True, kind="float")
    shuffled: bool = switch(False, "Shuffle.")
    mode: str = switch("a", "A mode.", choices=("a", "b"))
    flag_on: bool = switch(True, "A bool choice.", choices=(True, False))
    name: str = switch("x", "Free text.", option="--the-name")
    plain: int = 0  # not a switch


S = Switches(switches_of(Settings, group="settings"))


def test_a_dataclass_declares_its_switches_in_order_with_kinds_from_their_values() -> None:
    assert S.names() == ("M", "rate", "scale", "shuffled", "mode", "flag_on", "name") and len(S) == 7
    assert [s.kind for s in S] == ["int", "float", "float", "bool", "str", "bool", "str"]
    assert S.get("M").group == "settings" and S.get("M").default == 3
    assert S.defaults() == {
        "M": 3,
        "rate": 0.5,
        "scale": None,
        "shuffled": False,
        "mode": "a",
        "flag_on": True,
        "name": "x",
    }
    assert dataclasses.fields(Settings)[0].metadata[SWITCH]["low"] == 1 and KINDS == ("int", "float", "bool", "str")


def test_each_switch_says_what_it_allows_in_words() -> None:
    assert S.get("M").describe() == "integer >= 1 | all"
    assert S.get("rate").describe() == "number > 0 and <= 1"
    assert S.get("scale").describe() == "number | none"
    assert S.get("shuffled").describe() == "true | false"
    assert S.get("mode").describe() == "a | b"
    assert S.get("name").describe() == "text"
    assert (S.get("name").flag, S.get("rate").flag) == ("--the-name", "--rate")


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("M", 0, "M=0 must be an integer >= 1 or all"),
        ("M", 2.0, "M=2.0 must be an integer >= 1 or all"),
        ("M", True, "M=True must be an integer >= 1 or all"),
        ("M", "some", "M='some' must be an integer >= 1 or all"),
        ("rate", 0, "rate=0 must be a finite number > 0 and <= 1"),
        ("rate", 1.5, "rate=1.5 must be a finite number > 0 and <= 1"),
        ("rate", float("nan"), "rate=nan must be a finite number > 0 and <= 1"),
        ("rate", None, "rate=None must be a finite number > 0 and <= 1"),
        ("shuffled", 1, "shuffled=1 must be true or false"),
        ("mode", "c", "mode='c' is not one of a, b"),
        ("flag_on", 1, "flag_on=1 is not one of True, False"),
        ("name", 3, "name=3 must be text"),
    ],
)
def test_a_value_a_switch_does_not_allow_is_refused_in_one_line_naming_it(
    name: str, value: object, message: str
) -> None:
    with pytest.raises(SwitchError) as info:
        S.get(name).check(value)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("M", 1),
        ("M", "all"),
        ("rate", 1),
        ("rate", 1e-9),
        ("scale", None),
        ("scale", 2),
        ("shuffled", True),
        ("mode", "b"),
        ("flag_on", False),
        ("name", ""),
    ],
)
def test_every_allowed_value_passes(name: str, value: object) -> None:
    S.get(name).check(value)


@pytest.mark.parametrize(
    ("name", "text", "value"),
    [
        ("M", " 7 ", 7),
        ("M", "all", "all"),
        ("rate", "0.25", 0.25),
        ("scale", "None", None),
        ("scale", "2", 2.0),
        ("shuffled", "TRUE", True),
        ("flag_on", "false", False),
        ("mode", "b", "b"),
        ("name", " y ", "y"),
    ],
)
def test_text_becomes_the_switch_type(name: str, text: str, value: object) -> None:
    parsed = S.get(name).parse(text)
    assert parsed == value and type(parsed) is type(value)


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("M", "3.5", "M='3.5' must be an integer >= 1 or all"),
        ("rate", "fast", "rate='fast' must be a finite number"),
        ("shuffled", "yes", "shuffled='yes' must be true or false"),
        ("flag_on", "1", "flag_on='1' must be true or false"),
        ("M", "none", "M='none' must be an integer"),
        ("rate", "2", "rate=2.0 must be a finite number > 0 and <= 1"),
    ],
)
def test_text_that_is_not_a_value_is_refused_naming_the_switch(name: str, text: str, message: str) -> None:
    with pytest.raises(SwitchError, match=message.replace("(", r"\(").replace(".", r"\.")):
        S.get(name).parse(text)


def test_a_declaration_is_plain_data_a_study_can_store() -> None:
    assert S.get("name").as_dict() == {
        "name": "name",
        "group": "settings",
        "kind": "str",
        "default": "x",
        "choices": [],
        "flag": "--the-name",
        "help": "Free text.",
    }
    assert S.declarations()[4]["choices"] == ["a", "b"]


def test_a_set_of_switches_completes_values_and_refuses_unknown_names_and_duplicates() -> None:
    assert S.complete({"M": "all"})["M"] == "all" and S.complete({})["rate"] == 0.5
    with pytest.raises(SwitchError, match="'nope' is not a switch \\(known: M, rate"):
        S.complete({"nope": 1})
    with pytest.raises(SwitchError, match="rate=2"):
        S.complete({"rate": 2})
    one = Switch(name="a", kind="int", default=1, help="h")
    with pytest.raises(AblateError, match="switch\\(es\\) a declared twice"):
        Switches((one, one))
    with pytest.raises(AblateError, match="switch 'a' has kind 'list'; kinds are int, float, bool, str"):
        Switches((dataclasses.replace(one, kind="list"),))
    with pytest.raises(dataclasses.FrozenInstanceError):
        one.default = 2  # type: ignore[misc]


def test_a_switch_refuses_none_unless_declared_nullable_and_a_set_of_switches_is_frozen() -> None:
    plain = Switch(name="a", kind="int", default=1, help="h")
    with pytest.raises(SwitchError, match="a=None must be an integer"):
        plain.check(None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        S.all = ()  # type: ignore[misc]


def test_a_bound_is_closed_unless_declared_open_and_one_choice_is_enough_to_infer_a_kind() -> None:
    Switch(name="a", kind="float", default=1.0, help="h", low=0.0).check(0.0)
    only = Switches(switches_of(dataclasses.make_dataclass("One", [("m", str, switch("a", "h", choices=("a",)))])))
    assert only.get("m").kind == "str" and only.get("m").describe() == "a"
