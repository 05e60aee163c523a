"""What a value may be: the building blocks of every rule table, and the one error wording.

A :class:`Rule` says what one key accepts, in words (shown in errors) and as a test.
The estimator's parameters (:mod:`logreg.model.parameters`) and the config schema
(:mod:`logreg.schema`) build their tables from these, and both report a bad value with
:func:`check_value`, in one line that names the key, the value and what is allowed::

    train.batch_size: got 0; allowed: an integer >= 1 or 'full'
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from logreg.errors import UserError

REQUIRED = object()  # the default of a key that has none: leaving it out is an error


@dataclass(frozen=True)
class Rule:
    """What one key accepts: ``allowed`` in words (shown in errors), ``accepts`` as a test."""

    allowed: str
    accepts: Callable[[Any], bool]
    types: tuple[type, ...]  # a value of another type gets its type named in the error
    default: Any = REQUIRED


def is_int(value: Any) -> bool:
    """An integer, NumPy's included, but not a bool."""
    import numpy as np

    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """A finite int or float, NumPy's included, but not a bool."""
    import numpy as np

    numeric = isinstance(value, int | float | np.integer | np.floating)
    return numeric and not isinstance(value, bool) and math.isfinite(value)


def integer(minimum: int, default: Any = REQUIRED) -> Rule:
    return Rule(f"an integer >= {minimum}", lambda v: is_int(v) and v >= minimum, (int,), default)


def number(
    low: float,
    high: float = math.inf,
    *,
    closed: str = "[)",
    what: str = "",
    default: Any = REQUIRED,
) -> Rule:
    """A finite number between ``low`` and ``high``; ``closed`` says which ends are included."""
    left, right = closed
    if high == math.inf:
        words = f"a number {'>=' if left == '[' else '>'} {low:g}"
    else:
        words = f"a number in {left}{low:g}, {high:g}{right}"

    def accepts(value: Any) -> bool:
        if not is_number(value):
            return False
        above = value >= low if left == "[" else value > low
        below = value <= high if right == "]" else value < high
        return above and below

    return Rule(words + (f" ({what})" if what else ""), accepts, (int, float), default)


def choice(options: Sequence[str], default: Any = REQUIRED) -> Rule:
    options = tuple(options)
    return Rule(
        "one of " + ", ".join(map(repr, options)),
        lambda v: isinstance(v, str) and v in options,
        (str,),
        default,
    )


def boolean(default: Any = REQUIRED) -> Rule:
    return Rule("true or false", lambda v: isinstance(v, bool), (bool,), default)


def text(what: str = "a non-empty string", default: Any = REQUIRED) -> Rule:
    return Rule(what, lambda v: isinstance(v, str) and v.strip() != "", (str,), default)


def or_null(rule: Rule, meaning: str, default: Any = REQUIRED) -> Rule:
    return Rule(
        f"{rule.allowed}, or null ({meaning})",
        lambda v: v is None or rule.accepts(v),
        rule.types,
        default,
    )


def check_value(label: str, value: Any, rule: Rule) -> None:
    """A one-line UserError naming ``label``, the value and what ``rule`` allows."""
    if not rule.accepts(value):
        note = type_note(value, rule)
        raise UserError(f"{label}: got {show(value)}{note}; allowed: {rule.allowed}")


def show(value: Any, limit: int = 60) -> str:
    """A value as the user wrote it in YAML: null, true, 'text', 1e-05, [1, 2]."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    shown = repr(value) if isinstance(value, str | float | int) else str(value)
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


def type_note(value: Any, rule: Rule) -> str:
    """`` (text)`` when the value's type is not one the rule takes, else nothing."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "" if bool in rule.types else " (a boolean)"
    if isinstance(value, rule.types):
        return ""
    kinds = {str: "text", int: "a number", float: "a number", list: "a list", dict: "a mapping"}
    return f" ({kinds.get(type(value), type(value).__name__)})"
