"""Names a command will write, checked against what every supported storage can hold, before anything is written.

A name that one backend accepts and another refuses would make a command work on SQLite and fail on PostgreSQL
(or MariaDB) halfway through, with a study already created. So the limits here are the strictest of all the
supported storages, and they are checked the same way whatever the storage is (measured on PostgreSQL 15 and
MariaDB 10.11 with Optuna's RDB schema):

* a study name is at most :data:`STUDY_NAME_MAX` characters: Optuna's ``studies.study_name`` is
  ``VARCHAR(512)`` (PostgreSQL and MariaDB refuse a longer one; SQLite and the journals do not check);
* a study name holds no control character: PostgreSQL refuses NUL in text, and a newline or tab would break the
  one-line messages and tables that print names; it does not start or end with whitespace, because MariaDB's
  default collation pads with spaces, so ``"x"`` and ``"x "`` are the same unique key there and two on SQLite;
* a study attribute (the definition a study stores at creation) is at most :data:`ATTR_VALUE_MAX` bytes of
  JSON: Optuna's ``value_json`` is ``TEXT``, 65,535 bytes on MariaDB and MySQL, unlimited elsewhere.

Every check raises :class:`~ablate.errors.AblateError` (one line; the CLI exits with status 2).
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ablate.errors import AblateError

STUDY_NAME_MAX = 512
"""Characters in a study name: Optuna's ``VARCHAR(512)`` (``MAX_INDEXED_STRING_LENGTH``) on PostgreSQL and MariaDB."""

ATTR_VALUE_MAX = 65_535
"""Bytes of one attribute's JSON: Optuna's ``value_json`` is ``TEXT``, which MariaDB and MySQL cap at 64 KiB - 1."""

PROVENANCE_RESERVE = 8_192
"""Bytes kept free in the stored definition for its provenance (command line, versions, git, CPU, data checksum),
which is collected only when the study is created."""


def _shown(name: str) -> str:
    """A name as an error message shows it: quoted, escaped, and cut to a readable length."""
    text = repr(name)
    return text if len(text) <= 80 else f"{text[:60]}...{text[-12:]} ({len(name)} characters)"


def check_study_name(name: str, option: str = "--study-name") -> str:
    """``name`` if every supported storage can hold it as a study name; else one-line :class:`AblateError`."""
    if not isinstance(name, str) or not name:
        raise AblateError(f"{option}: a study name must not be empty")
    if len(name) > STUDY_NAME_MAX:
        raise AblateError(
            f"{option} {_shown(name)}: a study name holds at most {STUDY_NAME_MAX} characters "
            f"(PostgreSQL and MariaDB refuse longer ones), this one has {len(name)}; choose a shorter --study-name"
        )
    bad = sorted({c for c in name if unicodedata.category(c) in ("Cc", "Cs")})
    if bad:
        raise AblateError(
            f"{option} {_shown(name)}: a study name must not contain control characters "
            f"({', '.join(f'U+{ord(c):04X}' for c in bad)})"
        )
    if name != name.strip():
        raise AblateError(
            f"{option} {_shown(name)}: a study name must not start or end with whitespace "
            "(MariaDB would read it as the name without it)"
        )
    return name


def collation_key(name: str) -> str:
    """A study name as MariaDB's ``utf8mb4_general_ci`` compares it (Optuna's schema on MariaDB): case and
    accents ignored, and every character beyond the Basic Multilingual Plane (emoji) equal to every other. An
    approximation of that collation (``ß`` is ``s`` there, ``ss`` here), exact for what the tests plant."""
    out = []
    for ch in unicodedata.normalize("NFKD", name):
        if unicodedata.combining(ch):
            continue
        out.append("\ufffd" if ord(ch) > 0xFFFF else ch)
    return "".join(out).casefold()


def check_new_study_name(name: str, existing: Iterable[str]) -> str:
    """Refuse a new study whose name MariaDB would take for an existing study's (``Case`` and ``case``): there
    ``create_study`` fails and loading it by name loads the other study. Checked on every backend, so a name
    never works on SQLite and then collides on MariaDB; the same name (a resumption) is fine."""
    names = list(existing)
    if name in names:
        return name
    key = collation_key(name)
    for other in names:
        if collation_key(other) == key:
            raise AblateError(
                f"study name {_shown(name)} differs from the existing study {_shown(other)} only in case, accents "
                "or emoji, which MariaDB does not tell apart: choose another --study-name"
            )
    return name


def check_study_names(names: Iterable[str], option: str = "--study-name") -> list[str]:
    """Every name checked (the first bad one raises), so that no study is written before all are known good."""
    return [check_study_name(n, option) for n in names]


def attr_bytes(value: Any) -> int:
    """Bytes Optuna stores for an attribute value: its ``json.dumps`` (ASCII, so characters are bytes)."""
    return len(json.dumps(value))


def check_definition_size(name: str, payload: Mapping[str, Any], *, what: str = "design") -> None:
    """The definition a study ``name`` stores fits in one MariaDB ``TEXT`` column, with room for its provenance."""
    size = attr_bytes(json.loads(json.dumps(dict(payload), default=str)))
    limit = ATTR_VALUE_MAX - PROVENANCE_RESERVE
    if size > limit:
        raise AblateError(
            f"study {_shown(name)}: its {what} takes {size:,} bytes as stored, more than the {limit:,} a study "
            f"definition may take (MariaDB and MySQL store at most {ATTR_VALUE_MAX:,}); split it into smaller designs"
        )


def settings_label(settings: Mapping[str, Any] | None) -> str:
    """The suffix a study name gets for its ``--set`` values (so that different regimes never share a study)."""
    return "".join(f"+{k}={v}" for k, v in sorted((settings or {}).items()))


def derived_name(
    kind: str,
    fidelity: str,
    *,
    case: str | None = None,
    design: str | None = None,
    settings: Mapping[str, Any] | None = None,
) -> str:
    """The derived name of every study ablate makes, in one place (commands, scripts and docs use this):

    * ``sensitivity``: ``sensitivity-CASE-FIDELITY[+NAME=VALUE...]``;
    * ``ablation``: ``DESIGN-CASE-FIDELITY[+...]`` (``DESIGN``: ``ablation-ofat``, or with a design file's stem,
      ``ablation-ofat-transfer``);
    * ``table``: ``DESIGN-FIDELITY[+...]`` (``table2-quick``: all cases in one study).

    A confirmation's name derives from its search's (:func:`confirmation_name`).
    """
    suffix = settings_label(settings)
    if kind == "sensitivity":
        return f"sensitivity-{case}-{fidelity}{suffix}"
    if kind == "ablation":
        return f"{design}-{case}-{fidelity}{suffix}"
    if kind == "table":
        return f"{design}-{fidelity}{suffix}"
    raise ValueError(f"no study kind {kind!r}")


def confirmation_name(source: str, k: int, fidelity: str, source_fidelity: str) -> str:
    """The name of the confirmation of search ``source``'s ``k`` best (``-at-FIDELITY`` when re-run at another)."""
    return f"confirm-top{k}-{source}" + (f"-at-{fidelity}" if fidelity != source_fidelity else "")


def sensitivity_study_names(
    cases: Sequence[str],
    study_name: str | None,
    fidelity: str,
    settings: Mapping[str, Any] | None = None,
    confirm: int = 0,
) -> dict[str, str]:
    """The study each case of ``ablate study`` writes (and its confirmation's, with ``confirm``), all checked."""
    names: dict[str, str] = {}
    for c in cases:
        name = study_name if study_name and len(cases) == 1 else None
        derived = derived_name("sensitivity", fidelity, case=c, settings=settings)
        names[c] = name or (f"{study_name}-{c}" if study_name else derived)
    check_study_names(names.values())
    if confirm:
        check_study_names((confirmation_name(n, confirm, fidelity, fidelity) for n in names.values()), "--confirm")
    return names


def ablation_study_names(
    stem: str, cases: Sequence[str], study_name: str | None, fidelity: str, settings: Mapping[str, Any] | None = None
) -> dict[str, str]:
    """The study each case of ``ablate ablation`` writes, all checked."""
    names: dict[str, str] = {}
    for c in cases:
        derived = derived_name("ablation", fidelity, case=c, design=stem, settings=settings)
        names[c] = (f"{study_name}-{c}" if len(cases) > 1 else study_name) if study_name else derived
    check_study_names(names.values())
    return names
