"""User-facing errors: one clear line and a non-zero exit, a traceback only on request.

Stage entry points wrap their ``main`` with :func:`cli`. Anything raised as
:class:`UserError` (or a ``ValueError`` from input validation, or a diverged fit's
``FloatingPointError``) is printed as one line
naming the file, column or key at fault. Set ``LOGREG_DEBUG=1`` or
``HYDRA_FULL_ERROR=1`` to see the traceback instead.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any

EXIT_USER_ERROR = 2


class UserError(Exception):
    """Bad input or config that the user can fix; the message says what and where."""


def debug_enabled() -> bool:
    return any(
        os.environ.get(flag, "") not in ("", "0") for flag in ("LOGREG_DEBUG", "HYDRA_FULL_ERROR")
    )


def cli(main: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap an entry point so user errors end in one line on stderr and exit code 2."""

    @functools.wraps(main)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return main(*args, **kwargs)
        except (UserError, ValueError, FileNotFoundError, ArithmeticError) as exc:
            if debug_enabled():
                raise
            hint = "" if isinstance(exc, UserError) else " (LOGREG_DEBUG=1 shows the traceback)"
            print(f"error: {_program_name(main)}: {exc}{hint}", file=sys.stderr)
            raise SystemExit(EXIT_USER_ERROR) from None

    return wrapper


def _program_name(main: Callable[..., Any]) -> str:
    # Under `python -m logreg.stages.train` the module is __main__; its spec has the real name.
    module = getattr(main, "__module__", "logreg")
    if module == "__main__":
        spec = getattr(sys.modules["__main__"], "__spec__", None)
        module = spec.name if spec is not None else "logreg"
    return module
