"""The wrapper every explorer server callback runs through.

:func:`guarded` turns a refused value (an
:class:`~lossmap.explorer.validate.InputError`) into a message in the page and
any other error into a one-line message (never a traceback, which is logged
instead), so the server keeps serving. It sits below the tab modules, which
all use it.
"""

from __future__ import annotations

import functools
import logging
import traceback
from collections.abc import Callable
from typing import Any

from lossmap.explorer.validate import InputError

__all__ = ["guarded"]

log = logging.getLogger("lossmap.explorer")

#: Characters of an unexpected error's message shown in the page or logged.
_ERROR_CHARS = 200


def _cut(text: str) -> str:
    return text if len(text) <= _ERROR_CHARS else text[:_ERROR_CHARS] + "…"


def guarded(n_outputs: int, message_at: int | None) -> Callable[..., Any]:
    """Turn errors of a callback into a message output (or a silent no-op).

    Unexpected errors are logged with their traceback, but the message (which
    may repeat a value from the page) is cut to a few hundred characters.
    """

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def inner(*args: Any) -> Any:
            from dash import no_update
            from dash.exceptions import PreventUpdate

            try:
                return fn(*args)
            except PreventUpdate:
                raise
            except InputError as exc:
                text = _cut(str(exc))
            except Exception as exc:  # the page must never show a traceback
                where = "".join(traceback.format_tb(exc.__traceback__)[-3:])
                log.error(
                    "explorer callback %s failed: %s: %s\n%s",
                    fn.__name__,
                    type(exc).__name__,
                    _cut(str(exc)),
                    where,
                )
                text = f"could not update the view: {type(exc).__name__}: " + _cut(
                    str(exc)
                )
            out = [no_update] * n_outputs
            if message_at is None:
                raise PreventUpdate
            out[message_at] = text
            return out if n_outputs > 1 else out[0]

        return inner

    return wrap
