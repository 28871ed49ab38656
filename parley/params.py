"""Declared parameter constraints: what each config.yml value of a component may be.

In the spirit of scikit-learn's ``_parameter_constraints``: every component class declares,
next to its constructor, one constraint per parameter (``param_constraints``) and the checks
that tie several parameters together (``param_rules``). The recipe checks a config against
them when it builds the graph, so a value that cannot train is refused before anything
trains, with the config line, the value and what is allowed.

Values are what Parley's YAML 1.2 reading gives: ``no``/``yes``/``"False"`` are strings,
``1e12`` is a string (``1.0e+12`` a float), ``.inf`` a float. None of those passes for a
boolean or a number here, and the message says how to write what was meant.
"""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "AnyOf", "Bool", "Choice", "Constraint", "FeatureWindow", "Float", "Hint", "Int", "ListOf",
    "MappingOf", "NoneOr", "ParamProblem", "Regex", "Rule", "Str", "find_problems",
    "keyword_signature",
]

# A whole number past this overflows the 64-bit integers of numpy and torch, so it would
# end in a raw OverflowError; no parameter of a component means anything that large.
INT_LIMIT = 2**62

_NUMBER_TEXT = re.compile(r"^[-+]?(\d[\d_]*\.?\d*|\.\d+)([eE][-+]?\d+)?$")
_BOOL_TEXT = {"true", "false", "yes", "no", "on", "off", "y", "n"}


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _yaml(value: Any) -> str:
    """A plain value as config.yml writes it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "null" if value is None else str(value)


class Constraint:
    """What one parameter's value may be."""

    def allows(self, value: Any) -> bool:
        raise NotImplementedError

    def describe(self) -> str:
        """What is allowed, as it reads after "must be"."""
        raise NotImplementedError

    def hint(self, value: Any) -> str:
        """How to write what was probably meant; empty when there is nothing to add."""
        if isinstance(value, str) and _NUMBER_TEXT.match(value.strip()):
            if "e" in value.lower():
                return ("YAML reads this as text: write a number with an exponent with a dot "
                        "and a sign (1.0e+3), without quotes.")
            return "YAML reads this as text: write the number without quotes."
        return ""


class Bool(Constraint):
    """``true`` or ``false`` as YAML booleans; the strings ``"False"`` or ``no`` are refused
    (as strings they would count as true)."""

    def allows(self, value: Any) -> bool:
        return isinstance(value, bool)

    def describe(self) -> str:
        return "true or false"

    def hint(self, value: Any) -> str:
        if isinstance(value, str) and value.strip().lower() in _BOOL_TEXT:
            return ("YAML 1.2 (as Rasa reads it) keeps quoted values and yes/no/on/off as "
                    "text: write true or false, without quotes.")
        return ""


@dataclass(frozen=True)
class Int(Constraint):
    """A whole number (not a boolean, not a float) in ``[min, max]``."""

    min: int | None = None
    max: int | None = None

    def allows(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, int):
            return False
        low = -INT_LIMIT if self.min is None else self.min
        high = INT_LIMIT if self.max is None else self.max
        return low <= value <= high

    def describe(self) -> str:
        if self.min is not None and self.max is not None:
            return f"a whole number from {self.min} to {self.max:,}".replace(",", " ")
        if self.min is not None:
            return f"a whole number >= {self.min}"
        if self.max is not None:
            return f"a whole number <= {self.max}"
        return "a whole number"

    def hint(self, value: Any) -> str:
        if isinstance(value, float) and math.isfinite(value) and value == int(value):
            return "Write it without a decimal point or exponent."
        if isinstance(value, str) and _NUMBER_TEXT.match(value.strip()):
            return "YAML reads this as text: write the whole number without quotes or exponent."
        return super().hint(value)


@dataclass(frozen=True)
class Float(Constraint):
    """A finite number (int or float, not a boolean) within the bounds."""

    min: float | None = None
    max: float | None = None
    min_exclusive: bool = False
    max_exclusive: bool = False

    def allows(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if not math.isfinite(value):
            return False
        if self.min is not None and (value <= self.min if self.min_exclusive else value < self.min):
            return False
        return not (self.max is not None
                    and (value >= self.max if self.max_exclusive else value > self.max))

    def describe(self) -> str:
        low = "" if self.min is None else f"{'>' if self.min_exclusive else '>='} {self.min}"
        high = "" if self.max is None else f"{'<' if self.max_exclusive else '<='} {self.max}"
        bounds = " and ".join(b for b in (low, high) if b)
        return f"a finite number {bounds}".rstrip()


class Str(Constraint):
    """Any text; ``nonempty`` refuses ``""``."""

    def __init__(self, nonempty: bool = False) -> None:
        self.nonempty = nonempty

    def allows(self, value: Any) -> bool:
        return isinstance(value, str) and (bool(value) or not self.nonempty)

    def describe(self) -> str:
        return "a non-empty text" if self.nonempty else "a text"


class Regex(Str):
    """A text that is a valid regular expression."""

    def allows(self, value: Any) -> bool:
        if not super().allows(value):
            return False
        try:
            re.compile(value)
        except re.error:
            return False
        return True

    def describe(self) -> str:
        return "a valid regular expression"


class Choice(Constraint):
    """One of the given values (compared with their type: ``1`` is not ``True``)."""

    def __init__(self, *values: Any) -> None:
        self.values = values

    def allows(self, value: Any) -> bool:
        return any(type(value) is type(v) and value == v for v in self.values)

    def describe(self) -> str:
        shown = [_yaml(v) for v in self.values]
        if len(shown) == 1:
            return f"'{shown[0]}'" if isinstance(self.values[0], str) else shown[0]
        return "one of " + ", ".join(shown)


class AnyOf(Constraint):
    """Any of several forms (e.g. a size or a ``[first, last]`` pair)."""

    def __init__(self, *options: Constraint) -> None:
        self.options = tuple(o for option in options
                             for o in (option.options if isinstance(option, AnyOf) else (option,)))

    def allows(self, value: Any) -> bool:
        return any(option.allows(value) for option in self.options)

    def describe(self) -> str:
        parts = [option.describe() for option in self.options]
        if len(parts) == 2 and not any("," in p for p in parts):
            return " or ".join(parts)
        return "; ".join(parts[:-1]) + "; or " + parts[-1]

    def hint(self, value: Any) -> str:
        return next((h for option in self.options if (h := option.hint(value))), "")


class Hint(Constraint):
    """``constraint`` with a fixed hint for values it refuses (what to do instead)."""

    def __init__(self, constraint: Constraint, hint: str) -> None:
        self.constraint = constraint
        self.text = hint

    def allows(self, value: Any) -> bool:
        return self.constraint.allows(value)

    def describe(self) -> str:
        return self.constraint.describe()

    def hint(self, value: Any) -> str:
        return self.constraint.hint(value) or self.text


def NoneOr(constraint: Constraint) -> AnyOf:  # noqa: N802 - reads like the other constraints
    """``null`` or what ``constraint`` allows."""
    return AnyOf(constraint, _NONE)


class _Null(Constraint):
    def allows(self, value: Any) -> bool:
        return value is None

    def describe(self) -> str:
        return "null"


_NONE = _Null()


class ListOf(Constraint):
    """A list whose every item the ``item`` constraint allows, of length in the bounds."""

    def __init__(self, item: Constraint, min_len: int = 0, max_len: int | None = None) -> None:
        self.item = item
        self.min_len = min_len
        self.max_len = max_len

    def allows(self, value: Any) -> bool:
        if not isinstance(value, list):
            return False
        if len(value) < self.min_len or (self.max_len is not None and len(value) > self.max_len):
            return False
        return all(self.item.allows(v) for v in value)

    def describe(self) -> str:
        if self.min_len == self.max_len:
            size = f"a list of {self.min_len} items"
        elif self.max_len is not None:
            size = f"a list of {self.min_len} to {self.max_len} items"
        elif self.min_len == 1:
            size = "a non-empty list"
        elif self.min_len:
            size = f"a list of at least {self.min_len} items"
        else:
            size = "a list"
        return f"{size}, each {self.item.describe()}"

    def hint(self, value: Any) -> str:
        if isinstance(value, list):
            return next((h for v in value if (h := self.item.hint(v))), "")
        return ""


class MappingOf(Constraint):
    """A mapping with keys the ``keys`` constraint allows and values ``values`` allows."""

    def __init__(self, keys: Constraint, values: Constraint) -> None:
        self.keys = keys
        self.values = values

    def allows(self, value: Any) -> bool:
        return isinstance(value, Mapping) and all(
            self.keys.allows(k) and self.values.allows(v) for k, v in value.items())

    def describe(self) -> str:
        return f"a mapping of {self.keys.describe()} to {self.values.describe()}"

    def hint(self, value: Any) -> str:
        if isinstance(value, Mapping):
            return next((h for v in value.values() if (h := self.values.hint(v))), "")
        return ""


class FeatureWindow(Constraint):
    """A window of feature-name lists (before …, the token, after …): an odd number of
    lists, each naming features of ``valid``; ``needs_spacy`` names get their own hint."""

    def __init__(self, valid: Sequence[str], needs_spacy: Sequence[str] = ()) -> None:
        self.valid = list(valid)
        self.needs_spacy = tuple(needs_spacy)

    def allows(self, value: Any) -> bool:
        return (isinstance(value, list) and len(value) % 2 == 1
                and all(isinstance(names, list) and all(isinstance(f, str) and f in self.valid
                                                        for f in names) for names in value))

    def describe(self) -> str:
        return ("a list of an odd number of lists (before, token, after) of feature names "
                f"({', '.join(self.valid)})")

    def hint(self, value: Any) -> str:
        names = [f for ns in value if isinstance(ns, list) for f in ns] \
            if isinstance(value, list) else []
        for feature in names:
            if feature in self.needs_spacy:
                return (f"The feature '{feature}' needs part-of-speech tags from spaCy "
                        "(SpacyTokenizer), which Parley does not have yet; remove it.")
            if feature not in self.valid:
                return f"It names an unknown feature {feature!r}."
        return ""


@dataclass(frozen=True)
class Rule:
    """A check over several parameters: ``check`` gets the values of ``keys`` (given or
    default) and returns what is wrong, or None. It runs only when each of those values
    passed its own constraint."""

    keys: tuple[str, ...]
    check: Callable[..., str | None]


@dataclass(frozen=True)
class ParamProblem:
    """One parameter value that is not allowed: its key (the first key of a rule) and why."""

    key: str
    message: str


def find_problems(
    constraints: Mapping[str, Constraint], rules: Sequence[Rule], given: Mapping[str, Any],
    defaults: Mapping[str, Any],
) -> list[ParamProblem]:
    """What is wrong with the ``given`` values (keys without a constraint are not looked
    at: unknown keys are the caller's business), then with the rules over given + default
    values; each problem reads "KEY must be …, not VALUE." with a hint when there is one."""
    problems = []
    for key, value in given.items():
        constraint = constraints.get(key)
        if constraint is None or constraint.allows(value):
            continue
        message = f"{key} must be {constraint.describe()}, not {_show(value)}."
        hint = constraint.hint(value)
        problems.append(ParamProblem(key, f"{message} {hint}" if hint else message))
    bad = {p.key for p in problems}
    values = {**defaults, **given}
    for rule in rules:
        if bad & set(rule.keys) or not all(k in values for k in rule.keys):
            continue
        message = rule.check(*(values[k] for k in rule.keys))
        if message:
            key = next((k for k in rule.keys if k in given), rule.keys[0])
            problems.append(ParamProblem(key, message))
    return problems


def keyword_signature(own: Callable[..., Any], base: Callable[..., Any],
                      drop: Sequence[str] = (),
                      defaults: Mapping[str, Any] | None = None) -> inspect.Signature:
    """The signature of a constructor ``own`` that takes a few keywords of its own and
    passes ``**kwargs`` on to ``base``: ``base``'s keyword parameters less ``drop``, with
    ``defaults`` replacing theirs, then ``own``'s. Set as ``own.__signature__``, it lets
    ``inspect.signature`` (and so ``param_names``/``default_params``) see every parameter
    while each is declared once."""
    defaults = defaults or {}
    kinds = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    base_sig = inspect.signature(base)
    own_sig = inspect.signature(own)
    params = [p for p in own_sig.parameters.values() if p.name == "self"]
    params += [p.replace(default=defaults.get(p.name, p.default))
               for p in base_sig.parameters.values()
               if p.name != "self" and p.kind in kinds and p.name not in drop]
    params += [p for p in own_sig.parameters.values() if p.name != "self" and p.kind in kinds]
    return own_sig.replace(parameters=params)
