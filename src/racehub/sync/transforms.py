"""Field-mapping overrides: take a provider's raw record, produce racehub participant fields.

A mapping is a list of rules, one per racehub field: the source path(s) in the provider's
record, then transforms applied in order (trim, case, gender code map, date format, name
split, join, default). Everything here is a pure function of (rules, record), so the page
can preview a mapping on a live sample before it is saved, and sync applies the very same
code. Errors name the racehub field, the transform and the offending value.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

# racehub's participant fields a rule may fill, with their labels: only what persons and
# event participants store (sync/mapping.py PARTICIPANT_FIELDS). A chip, a phone, a
# category or the registration id are not a rule's to fill: the registration id is the
# sync's key and categories come from the event's links.
TARGET_FIELDS: dict[str, str] = {
    "first_name": "First name",
    "last_name": "Last name",
    "email": "E-mail",
    "birth_date": "Birth date (YYYY-MM-DD)",
    "gender": "Gender (M, F, X, U)",
    "bib": "Bib",
    "team": "Team",
    "city": "City",
    "region": "Region / state",
    "country": "Country (code)",
}
GENDER_CODES = ("M", "F", "X", "U")
MAX_SOURCES = 4
PATH_RE = re.compile(r"^[A-Za-z_][\w\-]*(\.(\d+|[A-Za-z_][\w\-:]*))*$")

Value = str | list[str | None] | None


class TransformError(ValueError):
    """A value a transform cannot handle; ``str()`` names the transform and the value."""


class _Op(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Trim(_Op):
    """Strip the ends and collapse runs of inner whitespace to one space."""

    op: Literal["trim"] = "trim"


class Case(_Op):
    op: Literal["case"] = "case"
    mode: Literal["upper", "lower", "title"]


class GenderMap(_Op):
    """Provider codes to racehub's M/F/X/U; codes compare case-insensitively, trimmed."""

    op: Literal["gender"] = "gender"
    map: dict[str, Literal["M", "F", "X", "U"]] = Field(min_length=1)
    default: Literal["M", "F", "X", "U"] | None = Field(
        default=None, description="For codes not in the map; unset: an unknown code is an error")


class DateFormat(_Op):
    """Parse with ``source`` (strptime), write with ``target`` (ISO date by default)."""

    op: Literal["date"] = "date"
    source: str = Field(min_length=2, max_length=40, examples=["%m/%d/%Y", "%Y-%m-%d"])
    target: str = Field(default="%Y-%m-%d", min_length=2, max_length=40)

    @field_validator("source", "target")
    @classmethod
    def _has_directive(cls, fmt: str) -> str:
        if "%" not in fmt:
            raise ValueError("a date format needs strftime directives such as %Y, %m, %d")
        return fmt


class SplitName(_Op):
    """One full-name field to a part: "Ada Lovelace" or "Lovelace, Ada". The last word is
    the last name (the comma form says it explicitly)."""

    op: Literal["split_name"] = "split_name"
    part: Literal["first", "last"]


class Join(_Op):
    """Several sources to one value; empty parts are skipped."""

    op: Literal["join"] = "join"
    separator: str = Field(default=" ", max_length=5)


class Default(_Op):
    """A value for records where the field is empty."""

    op: Literal["default"] = "default"
    value: str = Field(max_length=200)


Transform = Annotated[Trim | Case | GenderMap | DateFormat | SplitName | Join | Default,
                      Field(discriminator="op")]


class MappingRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    target: str
    sources: list[str] = Field(min_length=1, max_length=MAX_SOURCES)
    transforms: list[Transform] = Field(default_factory=list, max_length=10)

    @field_validator("target")
    @classmethod
    def _known_target(cls, target: str) -> str:
        if target not in TARGET_FIELDS:
            raise ValueError(f"racehub participants have no field {target!r} for a rule to "
                             "fill; one of " + ", ".join(TARGET_FIELDS))
        return target

    @field_validator("sources")
    @classmethod
    def _paths(cls, sources: list[str]) -> list[str]:
        cleaned = [s.strip() for s in sources]
        for path in cleaned:
            if not PATH_RE.match(path):
                raise ValueError(f"source {path!r} is not a field path like user.first_name "
                                 "or event_categories.0.tag_number")
        return cleaned


def check_unique_targets(rules: Sequence[MappingRule]) -> None:
    seen: set[str] = set()
    for rule in rules:
        if rule.target in seen:
            raise ValueError(f"two rules fill {rule.target!r}; keep one")
        seen.add(rule.target)


# --- reading the source ---------------------------------------------------------------------


def get_path(record: Any, path: str) -> Any:
    """``user.first_name`` or ``event_categories.0.tag_number``; None when absent."""
    current = record
    for part in path.split("."):
        if isinstance(current, Mapping):
            current = current.get(part)
        elif isinstance(current, list) and part.isdigit():
            index = int(part)
            current = current[index] if index < len(current) else None
        else:
            return None
        if current is None:
            return None
    return current


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (dict, list)):
        raise TransformError(f"the source holds a {type(value).__name__}, not a value; "
                             "point the path at a field inside it")
    return str(value)


def _as_text(value: Value) -> str | None:
    if isinstance(value, list):
        return join_values(value, " ")
    return value


# --- the transforms (pure) ------------------------------------------------------------------


def trim(value: str | None) -> str | None:
    if value is None:
        return None
    return " ".join(value.split())


def change_case(value: str | None, mode: str) -> str | None:
    if value is None:
        return None
    if mode == "upper":
        return value.upper()
    if mode == "lower":
        return value.lower()
    # Title case by word, keeping the rest of each word: "o'neil-smith" -> "O'Neil-Smith".
    return re.sub(r"[^\W\d_]+", lambda m: m.group(0)[:1].upper() + m.group(0)[1:].lower(),
                  value)


def map_gender(value: str | None, mapping: Mapping[str, str], default: str | None) -> str | None:
    if value is None or not value.strip():
        return default
    wanted = value.strip().casefold()
    for code, gender in mapping.items():
        if code.strip().casefold() == wanted:
            return gender
    if default is not None:
        return default
    raise TransformError(f"gender code {value!r} is not in the map (add it, or set a default)")


def reformat_date(value: str | None, source: str, target: str) -> str | None:
    if value is None or not value.strip():
        return None
    try:
        parsed = datetime.strptime(value.strip(), source)
    except ValueError:
        raise TransformError(f"{value!r} does not match the date format {source!r}") from None
    return parsed.strftime(target)


def split_name(value: str | None, part: str) -> str | None:
    if value is None:
        return None
    if "," in value:
        last, _, first = value.partition(",")
    else:
        words = value.split()
        if len(words) < 2:
            # One word: it is the last name (registrations always carry one), no first name.
            first, last = "", " ".join(words)
        else:
            first, last = " ".join(words[:-1]), words[-1]
    result = " ".join((first if part == "first" else last).split())
    return result or None


def join_values(values: Iterable[str | None], separator: str) -> str | None:
    parts = [v for v in values if v is not None and v.strip()]
    return separator.join(parts) if parts else None


def apply_transform(value: Value, transform: Transform) -> Value:
    if isinstance(transform, Join):
        if isinstance(value, list):
            return join_values(value, transform.separator)
        return value
    text = _as_text(value)
    if isinstance(transform, Trim):
        return trim(text)
    if isinstance(transform, Case):
        return change_case(text, transform.mode)
    if isinstance(transform, GenderMap):
        return map_gender(text, transform.map, transform.default)
    if isinstance(transform, DateFormat):
        return reformat_date(text, transform.source, transform.target)
    if isinstance(transform, SplitName):
        return split_name(text, transform.part)
    if isinstance(transform, Default):
        return text if text is not None and text.strip() else transform.value
    raise TransformError(f"unknown transform {transform!r}")  # pragma: no cover - union


def apply_rule(rule: MappingRule, record: Mapping[str, Any]) -> str | None:
    """The value ``rule`` gives its racehub field for ``record``. Raises TransformError."""
    raw = [_text(get_path(record, path)) for path in rule.sources]
    value: Value = raw[0] if len(raw) == 1 else list(raw)
    for transform in rule.transforms:
        try:
            value = apply_transform(value, transform)
        except TransformError as exc:
            raise TransformError(f"{rule.target}: {transform.op}: {exc}") from None
    return _as_text(value)


def apply_mapping(
    rules: Sequence[MappingRule], record: Mapping[str, Any]
) -> tuple[dict[str, str | None], dict[str, str]]:
    """Every rule on one record: (values by racehub field, errors by racehub field)."""
    values: dict[str, str | None] = {}
    errors: dict[str, str] = {}
    for rule in rules:
        try:
            values[rule.target] = apply_rule(rule, record)
        except TransformError as exc:
            values[rule.target] = None
            errors[rule.target] = str(exc)
    return values, errors


def source_paths(record: Any, prefix: str = "", *, limit: int = 200) -> list[str]:
    """The leaf paths of a sample record, for the editor's source suggestions."""
    found: list[str] = []

    def walk(node: Any, path: str) -> None:
        if len(found) >= limit:
            return
        if isinstance(node, Mapping):
            for key, child in node.items():
                walk(child, f"{path}.{key}" if path else str(key))
        elif isinstance(node, list):
            if node:
                walk(node[0], f"{path}.0" if path else "0")
        elif path:
            found.append(path)

    walk(record, prefix)
    return found


# --- the editor's one-line notation ---------------------------------------------------------
#
#   trim | upper | gender:1=M,2=F,*=U | date:%m/%d/%Y>%Y-%m-%d | first | join:, | default:U
#
# Steps are separated by "|"; "*" in a gender map is the default for other codes.

NOTATION_HELP = (
    "trim · upper · lower · title · gender:1=M,2=F,*=U · date:%m/%d/%Y (or date:%d.%m.%Y>%Y-%m-%d)"
    " · first · last (split a full name) · join (or join:\", \") · default:value"
)


def format_transforms(transforms: Sequence[Transform]) -> str:
    steps = []
    for t in transforms:
        if isinstance(t, Trim):
            steps.append("trim")
        elif isinstance(t, Case):
            steps.append(t.mode)
        elif isinstance(t, GenderMap):
            # Sorted: the stored JSONB object does not keep the order it was typed in.
            pairs = [f"{code}={gender}" for code, gender in sorted(t.map.items())]
            if t.default is not None:
                pairs.append(f"*={t.default}")
            steps.append("gender:" + ",".join(pairs))
        elif isinstance(t, DateFormat):
            steps.append(f"date:{t.source}" + ("" if t.target == "%Y-%m-%d" else f">{t.target}"))
        elif isinstance(t, SplitName):
            steps.append(t.part)
        elif isinstance(t, Join):
            sep = t.separator
            # Quoted when spaces at its ends matter: the notation trims each step.
            steps.append("join" if sep == " " else
                         f"join:{json.dumps(sep)}" if sep != sep.strip() else f"join:{sep}")
        elif isinstance(t, Default):
            steps.append(f"default:{t.value}")
    return " | ".join(steps)


def parse_transforms(text: str) -> list[Transform]:
    """The notation above to transforms; ValueError names the step at fault."""
    out: list[Transform] = []
    for position, raw in enumerate(text.split("|"), start=1):
        step = raw.strip()
        if not step:
            continue
        name, has_arg, arg = step.partition(":")
        name = name.strip().lower()
        try:
            out.append(_parse_step(name, arg if has_arg else None))
        except ValueError as exc:
            raise ValueError(f"step {position} ({step!r}): {exc}") from None
    return out


def _parse_step(name: str, arg: str | None) -> Transform:
    if name in ("trim",) and arg is None:
        return Trim()
    if name in ("upper", "lower", "title") and arg is None:
        return Case(mode=name)
    if name in ("first", "last") and arg is None:
        return SplitName(part=name)
    if name == "join":
        if arg is not None and arg.strip().startswith('"'):
            try:
                arg = str(json.loads(arg.strip()))
            except json.JSONDecodeError:
                raise ValueError('a quoted separator must be a JSON string, e.g. join:", "'
                                 ) from None
        return Join(separator=" " if arg is None or arg == "" else arg)
    if name == "default" and arg is not None:
        return Default(value=arg.strip())
    if name == "date" and arg:
        source, _, target = arg.partition(">")
        return DateFormat(source=source.strip(), target=target.strip() or "%Y-%m-%d")
    if name == "gender" and arg:
        mapping: dict[str, str] = {}
        default = None
        for pair in arg.split(","):
            code, eq, gender = pair.partition("=")
            gender = gender.strip().upper()
            if not eq or gender not in GENDER_CODES:
                raise ValueError(f"{pair.strip()!r} is not code=M, F, X or U")
            if code.strip() == "*":
                default = gender
            else:
                mapping[code.strip()] = gender
        if not mapping:
            raise ValueError("a gender map needs at least one code=gender pair")
        return GenderMap(map=mapping, default=default)
    raise ValueError("unknown step; use " + NOTATION_HELP)
