"""User-facing errors: one clear line and a non-zero exit, a traceback only on request.

Stage entry points wrap their ``main`` with :func:`cli`. Anything raised as
:class:`UserError` (or a ``ValueError`` from input validation, or a diverged fit's
``FloatingPointError``) is printed as one line
naming the file, column or key at fault. A warning is one line too,
``warning: <message>``, ours or a library's. Set ``LOGREG_DEBUG=1`` or
``HYDRA_FULL_ERROR=1`` to see the traceback, and Python's full form of each warning.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from typing import Any

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130  # the shell's code for a process ended by Ctrl-C


class UserError(ValueError):
    """Bad input or config that the user can fix; the message says what and where.

    A ValueError, so that callers of the estimator who catch ValueError, as they would
    for scikit-learn, also catch a bad parameter.
    """


def debug_enabled() -> bool:
    return any(
        os.environ.get(flag, "") not in ("", "0") for flag in ("LOGREG_DEBUG", "HYDRA_FULL_ERROR")
    )


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Raise KeyboardInterrupt on SIGTERM (``kill``, ``dvc queue kill``), as Ctrl-C does.

    Python's default SIGTERM ends the process at once: no ``finally`` runs, so temp
    files stay behind and an MLflow run stays RUNNING. As an exception, SIGTERM unwinds
    like Ctrl-C. Signal handlers can only be set from the main thread.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def one_line_warnings() -> Iterator[None]:
    """Print each warning as ``warning: <message>`` on stderr, as errors are printed.

    Python's own form adds the category, the file and line that called ``warn``, and
    that source line: noise for a user, whose message already names the column, key or
    file. ``LOGREG_DEBUG=1`` keeps Python's form, for the developer who wants the place.
    Only the format changes: whoever records warnings (``catch_warnings(record=True)``,
    pytest) still gets them, where replacing ``showwarning`` would print them instead.
    """
    if debug_enabled():
        yield
        return
    previous = warnings.formatwarning
    warnings.formatwarning = _one_line
    try:
        yield
    finally:
        warnings.formatwarning = previous


def _one_line(
    message: Warning | str, category: type[Warning], filename: str, lineno: int, line: Any = None
) -> str:
    # A library's message may span lines; joined, it stays one line per warning.
    text = " ".join(part.strip() for part in str(message).splitlines() if part.strip())
    return f"warning: {text}\n"


def cli(main: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap an entry point so user errors end in one line on stderr and exit code 2.

    Warnings are one line each for the duration of the call (:func:`one_line_warnings`).

    An interruption (Ctrl-C or SIGTERM) ends in one line and exit code 130, after every
    ``finally`` has run, so no output is left half-written.
    """

    @functools.wraps(main)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            with sigterm_as_interrupt(), one_line_warnings():
                return main(*args, **kwargs)
        except KeyboardInterrupt as exc:
            if debug_enabled():
                raise
            print(
                f"error: {_program_name(main)}: interrupted ({exc or 'SIGINT'}); "
                "no output was left half-written",
                file=sys.stderr,
            )
            raise SystemExit(EXIT_INTERRUPTED) from None
        except (UserError, ValueError, FileNotFoundError, ArithmeticError) as exc:
            if debug_enabled():
                raise
            hint = "" if isinstance(exc, UserError) else " (LOGREG_DEBUG=1 shows the traceback)"
            print(f"error: {_program_name(main)}: {exc}{hint}", file=sys.stderr)
            raise SystemExit(EXIT_USER_ERROR) from None

    return wrapper


@contextlib.contextmanager
def user_errors_exit() -> Iterator[None]:
    """A :class:`UserError` as one line on stderr and exit code 2, inside Hydra's own flow.

    Hydra prints an exception that a sweeper or launcher raises (a wrong address, a bad
    key) with its traceback, before :func:`cli` could see it; a ``SystemExit`` passes by.
    """
    try:
        yield
    except UserError as exc:
        if debug_enabled():
            raise
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_USER_ERROR) from None


def _program_name(main: Callable[..., Any]) -> str:
    # Under `python -m logreg.stages.train` the module is __main__; its spec has the real name.
    module = getattr(main, "__module__", "logreg")
    if module == "__main__":
        spec = getattr(sys.modules["__main__"], "__spec__", None)
        module = spec.name if spec is not None else "logreg"
    return module.removesuffix(".__main__")  # a package run with -m: logreg.study
