"""The page's whole state in its URL, and the lessons built on it.

The page writes its state (model, data and edits, loss, ranges, point,
optimizers and their settings, view, overlays) as ``?s=<base64url JSON>``
after every change (``assets/lossmap.js``); opening such a link restores it
(:func:`decode_state`, then the controls, whose values the server checks as
always). :data:`LESSONS` are three links a teacher can start from.
"""

from __future__ import annotations

import base64
import json
from typing import Any

__all__ = ["LESSONS", "MAX_STATE", "STATE_KEYS", "decode_state", "encode_state"]

#: Longest state accepted from a URL (characters of the ``s`` parameter).
MAX_STATE = 16_000
#: Keys a state may have (anything else is dropped).
STATE_KEYS = (
    "mode",
    "model",
    "preset",
    "loss",
    "delta",
    "l2",
    "region",
    "grid",
    "function",
    "view",
    "overlays",
    "point",
    "optimizers",
    "hyper",
    "steps",
    "batch",
    "schedule",
    "data",
)


def encode_state(state: dict[str, Any]) -> str:
    """``?s=…`` for ``state`` (keys outside :data:`STATE_KEYS` dropped)."""
    clean = {k: state[k] for k in STATE_KEYS if k in state}
    raw = json.dumps(clean, separators=(",", ":")).encode()
    return "?s=" + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_state(search: Any) -> dict[str, Any] | None:
    """The state in a URL's query string, or None when there is none.

    Raises ValueError (a short message) for a malformed or oversized one.
    Values are not checked here: they go into the controls and are checked
    by the server like anything typed.
    """
    if not isinstance(search, str) or "s=" not in search:
        return None
    token = ""
    for part in search.lstrip("?").split("&"):
        if part.startswith("s="):
            token = part[2:]
    if len(token) > MAX_STATE:
        raise ValueError(f"the link's state is too long ({len(token):,} characters)")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        state = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ValueError("the link's state could not be read") from None
    if not isinstance(state, dict):
        raise ValueError("the link's state could not be read")
    return {k: state[k] for k in STATE_KEYS if k in state}


#: Three tasks of a first lesson: (label, state).
LESSONS: dict[str, tuple[str, dict[str, Any]]] = {
    "two-points": (
        "1 · find the minimum for two points",
        {
            "mode": "problem",
            "model": "line",
            "preset": "two-points",
            "loss": "mse",
            "view": "2d",
            "overlays": [],
            "point": [-1.0, 1.5],
            "optimizers": [],
        },
    ),
    "robust": (
        "2 · MSE → MAE → Huber with an outlier",
        {
            "mode": "problem",
            "model": "line",
            "preset": "line-with-outliers",
            "loss": "mse",
            "delta": 0.5,
            "view": "2d",
            "overlays": [],
            "optimizers": ["gd", "adam"],
        },
    ),
    "valley": (
        "3 · the long valley of a line through the origin",
        {
            "mode": "problem",
            "model": "line",
            "preset": "sloped-line-through-origin",
            "loss": "mse",
            "view": "2d",
            "overlays": ["arrows", "curvature"],
            "optimizers": ["gd", "momentum"],
            "steps": 200,
        },
    ),
}
