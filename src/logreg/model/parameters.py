"""The rule of every estimator parameter: what it accepts, checked once.

:class:`~logreg.model.estimator.LogisticRegression` checks its parameters against this
table at ``fit``; the config schema (:mod:`logreg.schema`) uses the same rules for the
``model`` and ``train`` sections. The defaults are the estimator's signature; conf/
states the same values (tests/test_params.py holds them equal).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from logreg.errors import UserError
from logreg.rules import Rule, boolean, check_value, choice, integer, is_int, number, or_null

PENALTY_L1_RATIO = {"l2": 0.0, "l1": 1.0, "none": 0.0}  # elasticnet uses the l1_ratio argument
PENALTIES = (*PENALTY_L1_RATIO, "elasticnet")
SOLVERS = ("sgd", "newton", "proximal")
LR_SCHEDULES = ("constant", "invscaling", "step", "adaptive")
EPOCH_LOSSES = ("full", "progressive")
DTYPES = ("float64", "float32")


def _is_class_weight(value: Any) -> bool:
    return value is None or value == "balanced" or isinstance(value, dict)


PARAMETERS: dict[str, Rule] = {
    "penalty": choice(PENALTIES),
    "alpha": number(0, what="the penalty strength"),
    "l1_ratio": number(0, 1, closed="[]", what="the elastic-net mix"),
    "solver": choice(SOLVERS),
    "batch_size": Rule(
        "an integer >= 1 or 'full'", lambda v: v == "full" or (is_int(v) and v >= 1), (int, str)
    ),
    "learning_rate": Rule(
        "a number > 0 or 'auto'",
        lambda v: v == "auto" or number(0, closed="()").accepts(v),
        (int, float, str),
    ),
    "lr_schedule": choice(LR_SCHEDULES),
    "momentum": number(0, 1, closed="[)"),
    "epochs": integer(1),
    "epoch_loss": choice(EPOCH_LOSSES),
    "tol": number(0),
    "patience": or_null(integer(1), "no early stopping"),
    "max_time": or_null(number(0, closed="()", what="seconds"), "no time limit"),
    "class_weight": Rule(
        "null, 'balanced' or a mapping of class to weight", _is_class_weight, (str, dict)
    ),
    "fit_intercept": boolean(),
    "dtype": choice(DTYPES),
    "seed": integer(0),
}


def check_parameters(values: Mapping[str, Any], label: Callable[[str], str] = str) -> None:
    """A one-line UserError for the first value, or combination, the rules refuse.

    ``label`` names a key in the message: the bare parameter for the estimator,
    ``model.penalty`` for the config schema.
    """
    for key, value in values.items():
        if key in PARAMETERS:
            check_value(label(key), value, PARAMETERS[key])
    check_combination(values, label)


def check_combination(values: Mapping[str, Any], label: Callable[[str], str] = str) -> None:
    """The rule between parameters: Newton needs a twice-differentiable penalty."""
    penalty = values.get("penalty")
    if values.get("solver") == "newton" and penalty in ("l1", "elasticnet"):
        raise UserError(
            f"{label('solver')}: got 'newton' with {label('penalty')}={penalty!r}; allowed: "
            "newton with penalty 'l2' or 'none' (use solver 'proximal' or 'sgd' for 'l1' and "
            "'elasticnet')"
        )


def effective_penalty(penalty: str, alpha: float, l1_ratio: float) -> tuple[float, float]:
    """(α, ρ) of J for a penalty name: none is α = 0, l2 is ρ = 0, l1 is ρ = 1."""
    if penalty == "none":
        return 0.0, 0.0
    return float(alpha), float(l1_ratio) if penalty == "elasticnet" else PENALTY_L1_RATIO[penalty]
