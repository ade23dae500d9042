"""The one mapping pipeline: a provider's participant -> the values racehub stores.

The order, the same for a sync and for the mapping preview:

1. **The adapter's default mapping.** The adapter read the row into a
   :class:`ProviderParticipant`, each field from the path its ``DEFAULT_FIELD_MAPPING``
   names, with the provider's own normalization (date formats, time zones, gender codes)
   as declared steps in its ``mapping.py``. Its values are taken for every racehub field
   below; an empty one stays empty (None), never a made-up value.
2. **The connection's rules** (``ProviderConnection.field_mapping``), each overriding the
   one field it targets, computed from the provider's raw record (``participant.raw``).
   A rule that fails is a :class:`RowProblem` naming its field, and that field keeps the
   value of step 1.
3. **Racehub's shape**: every value is checked against what the field stores (a birth
   date is a real date, a gender one of M/F/X/U, text within its column's length). A value
   that does not fit is a problem naming the field, and the field is empty.

Only the fields participants and persons have may be targets (``PARTICIPANT_FIELDS``);
``transforms.MappingRule`` refuses others. Rules stored before that (e.g. a ``chip`` rule)
are not an error when read: :func:`connection_rules` sets them aside as ``ignored``, the
sync and the preview do not apply them, the mapping page names them, and the next save of
the mapping drops them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from pydantic import ValidationError

from racehub.providers.base import ProviderAdapter, ProviderParticipant, RowProblem
from racehub.providers.errors import ProviderError
from racehub.providers.values import MappingError
from racehub.sync.transforms import MappingRule, TransformError, apply_rule

# The racehub fields a participant's mapping fills (persons.* and event_participants.*),
# with the longest text each column stores.
PARTICIPANT_FIELDS: dict[str, int | None] = {
    "first_name": 120,
    "last_name": 120,
    "email": 320,
    "birth_date": None,
    "gender": None,
    "bib": 20,
    "team": 200,
    "city": 120,
    "region": 120,
    "country": 3,
}
GENDERS = frozenset({"M", "F", "X", "U"})

MappedValue = str | date | None


@dataclass(frozen=True)
class MappedParticipant:
    """The outcome of the pipeline for one participant.

    ``values`` has every field of PARTICIPANT_FIELDS (None: empty); ``from_rule`` names the
    fields a connection's rule gave; ``problems`` name the fields that could not be read
    (such a field holds the default mapping's value, or None when that did not fit either).
    """

    participant: ProviderParticipant
    values: dict[str, MappedValue]
    from_rule: frozenset[str] = frozenset()
    problems: tuple[RowProblem, ...] = field(default=())

    @property
    def ref(self) -> str:
        return self.participant.ref


@dataclass(frozen=True)
class StoredRules:
    rules: list[MappingRule]
    ignored: list[str] = field(default_factory=list)  # "rule 2 (chip): why", for the page


def connection_rules(stored: Sequence[Any] | None) -> StoredRules:
    """A connection's stored ``field_mapping`` as rules. A stored rule that is no longer
    valid (a target participants do not have) is set aside with why, never an error."""
    rules: list[MappingRule] = []
    ignored: list[str] = []
    for number, raw in enumerate(stored or [], start=1):
        try:
            rules.append(MappingRule.model_validate(raw))
        except ValidationError as exc:
            target = raw.get("target") if isinstance(raw, Mapping) else None
            reason = "; ".join(str(e.get("msg", "")).removeprefix("Value error, ")
                               for e in exc.errors())
            ignored.append(f"rule {number} ({target or 'no target'}): {reason}")
    return StoredRules(rules, ignored)


def default_mapping(provider: str) -> dict[str, str]:
    """The provider's default mapping as the mapping page shows it: racehub field -> the
    path in the provider's record (its adapter's ``DEFAULT_FIELD_MAPPING``; a test checks
    the adapter reads each field there)."""
    from racehub.providers.catalog import get_spec

    spec = get_spec(provider)
    table = spec.adapter_class().default_field_mapping if spec else {}
    return {name: table[name] for name in PARTICIPANT_FIELDS if name in table}


def default_values(participant: ProviderParticipant) -> dict[str, Any]:
    """Step 1: the adapter's normalized values of racehub's fields, "" read as empty."""
    values: dict[str, Any] = {}
    for name in PARTICIPANT_FIELDS:
        value = getattr(participant, name, None)
        values[name] = None if isinstance(value, str) and not value.strip() else value
    return values


def map_participant(
    participant: ProviderParticipant, rules: Sequence[MappingRule], *, row: int = 0
) -> MappedParticipant:
    """The final values of one participant: the adapter's default mapping, then ``rules``
    (the connection's ``field_mapping``, parsed) on its raw record. ``row`` is the
    participant's index on its page, for the problems."""
    values = default_values(participant)
    problems: list[RowProblem] = []
    from_rule: set[str] = set()
    record = participant.raw if isinstance(participant.raw, Mapping) else {}
    for rule in rules:
        if rule.target not in PARTICIPANT_FIELDS:
            continue  # a stored rule of a field no longer offered: ignored (see module doc)
        try:
            value: Any = apply_rule(rule, record)
        except TransformError as exc:
            problems.append(_problem(participant, row, rule.target, str(exc)))
            continue
        values[rule.target] = value
        from_rule.add(rule.target)
    for name, value in values.items():
        try:
            values[name] = _fit(name, value)
        except ValueError as exc:
            values[name] = None
            from_rule.discard(name)
            problems.append(_problem(participant, row, name, str(exc)))
    return MappedParticipant(participant=participant, values=values,
                             from_rule=frozenset(from_rule), problems=tuple(problems))


def read_record(adapter: type[ProviderAdapter] | None, record: Any,
                event_ref: str = "") -> tuple[ProviderParticipant, str | None]:
    """A raw record (a pasted sample) read by the adapter's default mapping, as a sync
    reads it: (the participant, None); or, when the adapter cannot read it, a participant
    with no values (only the rules will fill it) and why."""
    if adapter is not None:
        try:
            return adapter.participant_from_raw(record, event_ref), None
        except MappingError as exc:
            why = f"{exc.field}: {exc.message}"
        except ProviderError as exc:
            why = exc.message
        except (ValueError, TypeError, AttributeError) as exc:
            why = f"not the shape the provider sends ({type(exc).__name__}: {exc})"
    else:
        why = "no adapter to read it"
    return ProviderParticipant(ref="", event_ref=event_ref, raw=record), why


def _problem(participant: ProviderParticipant, row: int, name: str,
             message: str) -> RowProblem:
    return RowProblem(row, message, ref=participant.ref, field=name, raw=participant.raw)


def _fit(name: str, value: Any) -> MappedValue:
    """``value`` as field ``name`` stores it; ValueError says why it does not fit."""
    if value is None:
        return None
    if name == "birth_date":
        if isinstance(value, date):
            return value
        text = str(value).strip()
        if not text:
            return None
        try:
            return date.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a date as YYYY-MM-DD (add a date step to "
                             "the rule)") from None
    text = " ".join(str(value).split())
    if not text:
        return None
    if name == "gender":
        code = text.upper()
        if code not in GENDERS:
            raise ValueError(f"{text!r} is not M, F, X or U (add a gender step to the rule)")
        return code
    limit = PARTICIPANT_FIELDS[name]
    if limit is not None and len(text) > limit:
        raise ValueError(f"{text[:20]!r}... is longer than the {limit} characters it may have"
                         if len(text) > 20 else
                         f"{text!r} is longer than the {limit} characters it may have")
    return text
