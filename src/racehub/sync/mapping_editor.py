"""The field-mapping editor's form, in an operator's words.

The page has one row per racehub field (``TARGET_FIELDS``): the provider's default path
for it (from the adapter), a dropdown of the provider's field paths (found in a sample:
``sample_paths``), a box to type path(s) instead, and the row's steps in the one-line
notation of sync/transforms.py, which a step picker writes for the operator
(``build_step``: a step and its options, e.g. a date format from a list, the provider's
gender codes). A row with nothing chosen keeps the default mapping; a row with steps but
no path applies them to the field's default path.

Posted names, kept from the first editor (the API and tests post them too):
``target_N``, ``sources_N`` (typed, comma separated), ``transforms_N`` (the notation);
plus ``path_N`` (the dropdown: used when nothing is typed) and ``step_*_N`` (the picker).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from racehub.core.exceptions import Invalid
from racehub.sync.transforms import (
    GENDER_CODES,
    TARGET_FIELDS,
    Case,
    DateFormat,
    Default,
    GenderMap,
    Join,
    MappingRule,
    SplitName,
    Transform,
    Trim,
    check_unique_targets,
    format_transforms,
    parse_transforms,
    source_paths,
)

# The step picker's list, in the order offered.
STEP_KINDS: dict[str, str] = {
    "trim": "Trim spaces",
    "upper": "UPPER CASE",
    "lower": "lower case",
    "title": "Title Case",
    "first": "First name of a full name",
    "last": "Last name of a full name",
    "join": "Join the paths",
    "gender": "Gender codes",
    "date": "Date format",
    "default": "Value when empty",
}

# Date formats offered by the picker (strptime, how an operator reads it). Two-digit years
# are left out on purpose: 01/02/03 cannot be read without guessing a century.
DATE_FORMATS: tuple[tuple[str, str], ...] = (
    ("%m/%d/%Y", "MM/DD/YYYY (12/31/1990)"),
    ("%d/%m/%Y", "DD/MM/YYYY (31/12/1990)"),
    ("%d.%m.%Y", "DD.MM.YYYY (31.12.1990)"),
    ("%Y-%m-%d", "YYYY-MM-DD (1990-12-31)"),
    ("%Y/%m/%d", "YYYY/MM/DD (1990/12/31)"),
    ("%m-%d-%Y", "MM-DD-YYYY (12-31-1990)"),
    ("%d-%m-%Y", "DD-MM-YYYY (31-12-1990)"),
    ("%Y%m%d", "YYYYMMDD (19901231)"),
    ("%Y-%m-%dT%H:%M:%S", "date and time (1990-12-31T08:00:00)"),
)
_DATE_LABELS = dict(DATE_FORMATS)
GENDER_LABELS = {"M": "M (men)", "F": "F (women)", "X": "X (non-binary)", "U": "U (unknown)"}
MAX_PATHS = 200  # paths offered in a dropdown


@dataclass
class EditorRow:
    """One row of the page: a racehub field and what fills it."""

    index: int
    target: str
    label: str
    default_path: str | None
    sources: str = ""  # as typed, comma separated
    path: str = ""  # the dropdown's choice
    transforms: str = ""  # the notation
    steps: list[str] = field(default_factory=list)  # the notation in words
    error: str | None = None

    @property
    def has_rule(self) -> bool:
        return bool(self.sources.strip() or self.path or self.transforms.strip())


def _describe(t: Transform) -> str:
    if isinstance(t, Trim):
        return "Trim spaces"
    if isinstance(t, Case):
        return STEP_KINDS[t.mode]
    if isinstance(t, SplitName):
        return STEP_KINDS[t.part]
    if isinstance(t, Join):
        return f"Join with {t.separator!r}"
    if isinstance(t, Default):
        return f"When empty: {t.value!r}"
    if isinstance(t, DateFormat):
        source = _DATE_LABELS.get(t.source, t.source).split(" (")[0]
        target = _DATE_LABELS.get(t.target, t.target).split(" (")[0]
        return f"Date from {source} to {target}"
    codes = ", ".join(f"{code} → {gender}" for code, gender in sorted(t.map.items()))
    other = f"others → {t.default}" if t.default else "others refused"
    return f"Gender: {codes}; {other}"


def describe_steps(notation: str) -> tuple[list[str], str | None]:
    """The steps of ``notation`` in words, or why the notation does not parse."""
    try:
        return [_describe(t) for t in parse_transforms(notation)], None
    except ValueError as exc:
        return [], str(exc).splitlines()[0]


def _row(index: int, target: str, defaults: Mapping[str, str], *, sources: str = "",
         path: str = "", transforms: str = "", error: str | None = None) -> EditorRow:
    steps, bad = describe_steps(transforms)
    return EditorRow(index=index, target=target, label=TARGET_FIELDS[target],
                     default_path=defaults.get(target), sources=sources, path=path,
                     transforms=transforms, steps=steps, error=error or bad)


def rows_of_rules(rules: Sequence[MappingRule], defaults: Mapping[str, str]) -> list[EditorRow]:
    """The page's rows for saved ``rules``: every racehub field, its rule's values if any."""
    by_target = {rule.target: rule for rule in rules}
    rows = []
    for index, target in enumerate(TARGET_FIELDS):
        rule = by_target.get(target)
        if rule is None:
            rows.append(_row(index, target, defaults))
            continue
        single = rule.sources[0] if len(rule.sources) == 1 else ""
        rows.append(_row(index, target, defaults, sources=", ".join(rule.sources),
                         path=single, transforms=format_transforms(rule.transforms)))
    return rows


def _indexes(form: Mapping[str, Any]) -> list[int]:
    return sorted({int(k.split("_", 1)[1]) for k in form if k.startswith("target_")
                   and k.split("_", 1)[1].isdigit()})


def _text(form: Mapping[str, Any], name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def rows_of_form(form: Mapping[str, Any], defaults: Mapping[str, str]) -> list[EditorRow]:
    """The rows as posted (what the operator typed stays), every racehub field once: a
    form from the page has them all; a shorter one (the API's tests, an old page) gets the
    missing fields as default rows."""
    posted: dict[str, EditorRow] = {}
    extra: list[EditorRow] = []
    for i in _indexes(form):
        target = _text(form, f"target_{i}").strip()
        values = {"sources": _text(form, f"sources_{i}"), "path": _text(form, f"path_{i}"),
                  "transforms": _text(form, f"transforms_{i}")}
        if target in TARGET_FIELDS and target not in posted:
            posted[target] = _row(0, target, defaults, **values)
        elif any(v.strip() for v in values.values()):
            # An unknown or repeated field: shown as typed so the error has a row to name.
            extra.append(EditorRow(0, target, target or "—", None, sources=values["sources"],
                                   path=values["path"], transforms=values["transforms"]))
    rows = [posted.get(target) or _row(0, target, defaults) for target in TARGET_FIELDS]
    for index, row in enumerate(rows + extra):
        row.index = index
    return rows + extra


def rules_of_form(form: Mapping[str, Any], defaults: Mapping[str, str]) -> list[MappingRule]:
    """Rows ``target_N`` / ``sources_N`` (else ``path_N``) / ``transforms_N`` to rules;
    rows with no path and no step keep the default mapping. Raises Invalid naming the row
    and the input at fault."""
    rules = []
    for row, i in enumerate(_indexes(form), start=1):
        target = _text(form, f"target_{i}").strip()
        typed = [s.strip() for s in _text(form, f"sources_{i}").split(",") if s.strip()]
        picked = _text(form, f"path_{i}").strip()
        steps = _text(form, f"transforms_{i}")
        sources = typed or ([picked] if picked else [])
        if not sources and not steps.strip():
            continue
        where = f"row {row}"
        if not target:
            raise Invalid(f"{where}: choose the racehub field", field=f"target_{i}")
        if not sources:
            if target not in defaults:
                raise Invalid(f"{where} ({target}): the provider has no default path for "
                              "this field; give the source field path(s)",
                              field=f"sources_{i}")
            sources = [defaults[target]]  # steps on the default path
        try:
            transforms = parse_transforms(steps)
        except ValueError as exc:
            raise Invalid(f"{where} ({target}): {str(exc).splitlines()[0]}",
                          field=f"transforms_{i}") from None
        try:
            rules.append(MappingRule(target=target, sources=sources, transforms=transforms))
        except ValidationError as exc:
            first = exc.errors()[0]
            message = str(first.get("msg", "invalid")).removeprefix("Value error, ")
            name = "sources" if first.get("loc", ("",))[0] == "sources" else "target"
            raise Invalid(f"{where} ({target}): {message}", field=f"{name}_{i}") from None
    try:
        check_unique_targets(rules)
    except ValueError as exc:
        raise Invalid(str(exc), field="target") from None
    return rules


# --- the step picker ------------------------------------------------------------------------


def build_step(form: Mapping[str, Any], i: int) -> Transform:
    """The step chosen in row ``i``'s picker (``step_kind_i`` and its options). Raises
    Invalid naming the option at fault."""
    kind = _text(form, f"step_kind_{i}").strip()
    try:
        if kind == "trim":
            return Trim()
        if kind in ("upper", "lower", "title"):
            return Case(mode=kind)
        if kind in ("first", "last"):
            return SplitName(part=kind)
        if kind == "join":
            return Join(separator=_text(form, f"step_join_{i}") or " ")
        if kind == "default":
            value = _text(form, f"step_default_{i}").strip()
            if not value:
                raise Invalid("give the value for empty records", field=f"step_default_{i}")
            return Default(value=value)
        if kind == "date":
            custom = _text(form, f"step_date_custom_{i}").strip()
            chosen = custom or _text(form, f"step_date_{i}").strip()
            if not chosen:
                raise Invalid("choose the provider's date format", field=f"step_date_{i}")
            return DateFormat(source=chosen)
        if kind == "gender":
            return _gender_step(form, i)
    except ValidationError as exc:
        first = exc.errors()[0]
        message = str(first.get("msg", "invalid")).removeprefix("Value error, ")
        raise Invalid(message, field=f"step_{kind}_{i}") from None
    raise Invalid("choose a step from the list", field=f"step_kind_{i}")


def _gender_step(form: Mapping[str, Any], i: int) -> GenderMap:
    mapping: dict[str, str] = {}
    for gender in GENDER_CODES:
        for code in _text(form, f"step_gender_{gender}_{i}").split(","):
            code = code.strip()
            if not code:
                continue
            if code in mapping and mapping[code] != gender:
                raise Invalid(f"the provider's code {code!r} is given for {mapping[code]} "
                              f"and {gender}", field=f"step_gender_{gender}_{i}")
            mapping[code] = gender
    if not mapping:
        raise Invalid("give the provider's code for at least one gender",
                      field=f"step_gender_M_{i}")
    other = _text(form, f"step_gender_other_{i}").strip().upper()
    if other and other not in GENDER_CODES:
        raise Invalid("others: one of M, F, X, U, or refused", field=f"step_gender_other_{i}")
    return GenderMap(map=mapping, default=other or None)


def add_step(form: Mapping[str, Any], i: int) -> str:
    """Row ``i``'s notation with the picked step appended (the notation, so typing and
    picking write the same thing). Raises Invalid."""
    current = _text(form, f"transforms_{i}")
    try:
        steps = parse_transforms(current)
    except ValueError as exc:
        raise Invalid(f"steps: {str(exc).splitlines()[0]}", field=f"transforms_{i}") from None
    return format_transforms([*steps, build_step(form, i)])


def remove_step(form: Mapping[str, Any], i: int, position: int) -> str:
    """Row ``i``'s notation without its step number ``position`` (from 0)."""
    try:
        steps = parse_transforms(_text(form, f"transforms_{i}"))
    except ValueError as exc:
        raise Invalid(f"steps: {str(exc).splitlines()[0]}", field=f"transforms_{i}") from None
    return format_transforms([s for n, s in enumerate(steps) if n != position])


def sample_paths(records: Iterable[Any], known: Iterable[str] = ()) -> list[str]:
    """The field paths of a sample's records (and those ``known`` already), each once, in
    the order first seen, at most MAX_PATHS."""
    paths: list[str] = []
    seen: set[str] = set()
    for path in [*known, *(p for r in records for p in source_paths(r))]:
        if path and path not in seen:
            seen.add(path)
            paths.append(path)
    return paths[:MAX_PATHS]
