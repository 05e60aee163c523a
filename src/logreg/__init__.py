"""logreg: logistic regression from scratch in NumPy, run as a reproducible experiment project."""

from logreg.model import LogisticRegression

__all__ = ["LogisticRegression"]
