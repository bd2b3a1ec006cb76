"""The optimizer runs of the Landscape tab: computed once on the server, sent
once, drawn and played in the browser.

``run`` runs the ticked optimizers from the current point and stores the
paths, loss curves and statuses (``runs``); new settings clear them (paths
belong to one landscape), except a data edit, after which the same request
runs again on the new data. ``assets/lossmap.js`` draws the stored paths on
the landscape and animates them (play/pause, the step slider) without
resending the figure.
"""

from __future__ import annotations

from typing import Any

from lossmap.explorer import teaching
from lossmap.explorer.guard import guarded
from lossmap.explorer.landscape_tab import (
    SETTINGS_INPUTS,
    hyper_pattern,
    setting_inputs,
    setting_states,
    settings_from,
)
from lossmap.explorer.validate import ProblemSettings, check_point, run_settings

__all__ = ["register"]

#: How many values :data:`SETTINGS_INPUTS` gives a callback.
_N_SETTINGS = len(SETTINGS_INPUTS)


def _hyper_from(ids: list[dict[str, Any]], values: list[Any]) -> dict[str, Any]:
    """``{optimizer: {setting: raw value}}`` from pattern-matched inputs."""
    out: dict[str, dict[str, Any]] = {}
    for id_, value in zip(ids, values):
        if isinstance(id_, dict):
            out.setdefault(str(id_.get("name")), {})[str(id_.get("key"))] = value
    return out


def _run_request(settings: Any, request: dict[str, Any], run_id: int) -> Any:
    """Runs, loss curves and statuses for a checked-again ``request``."""
    rs = run_settings(
        request.get("optimizers"),
        request.get("hyper"),
        request.get("steps"),
        request.get("schedule"),
        available={
            n: tuple(teaching.optimizer_hyper(n)) for n in teaching.optimizer_names()
        },
        schedules=teaching.schedule_names(),
        batch_size=request.get("batch"),
    )
    start = check_point(request.get("start"), "start")
    runs = teaching.run_optimizers(settings, rs, start)
    stored = {
        "key": settings.key(),
        "start": list(start),
        "id": run_id,
        "request": {
            "optimizers": list(rs.optimizers),
            "hyper": rs.hyper,
            "steps": rs.steps,
            "schedule": rs.schedule,
            "batch": rs.batch_size,
            "start": list(start),
        },
        "runs": [r.to_json() for r in runs],
    }
    lines = teaching.status_lines(runs, teaching.best_value(settings))
    return stored, teaching.loss_view(runs), "\n".join(lines)


def register(app: Any) -> None:
    """Optimizer runs: cleared by new settings (run again after a data
    edit), computed on ``run``, drawn and played in the page."""
    from dash import ALL, Input, Output, State, ctx

    settings_in, settings_state = setting_inputs(), setting_states()
    hyper_ids = hyper_pattern()

    # ---- new settings -> no runs (paths belong to one landscape), except
    # after a data edit: the same optimizers run again on the new data
    @app.callback(
        Output("runs", "data"),
        Output("loss-curves", "figure"),
        Output("run-status", "children"),
        *settings_in,
        State("runs", "data"),
    )
    @guarded(3, None)
    def clear_runs(*args: Any) -> Any:
        stored = args[_N_SETTINGS]
        request = stored.get("request") if isinstance(stored, dict) else None
        if ctx.triggered_id == "data-edit" and isinstance(request, dict):
            settings = settings_from(*args[:_N_SETTINGS])
            if isinstance(settings, ProblemSettings):
                return _run_request(settings, request, int(stored.get("id", 0)) + 1000)
        return None, teaching.loss_view([]), "choose optimizers and press run"

    # ---- run -> optimizer paths, loss per step and statuses, at once
    @app.callback(
        Output("runs", "data", allow_duplicate=True),
        Output("loss-curves", "figure", allow_duplicate=True),
        Output("run-status", "children", allow_duplicate=True),
        Output("run-message", "children"),
        Input("run", "n_clicks"),
        State("point", "data"),
        State({"type": "opt-on", "name": ALL}, "value"),
        State(hyper_ids, "value"),
        State("opt-steps", "value"),
        State("schedule", "value"),
        State("batch-size", "value"),
        *settings_state,
        prevent_initial_call=True,
        running=[
            (Output("run", "disabled"), True, False),
            (Output("run", "children"), "running…", "run from the current point"),
        ],
    )
    @guarded(4, 3)
    def run(
        n_clicks: Any,
        point: Any,
        chosen: Any,
        hyper_values: Any,
        steps: Any,
        schedule: Any,
        batch: Any,
        *args: Any,
    ) -> Any:
        settings = settings_from(*args)
        names = [
            n for group in (chosen or []) if isinstance(group, list) for n in group
        ]
        ids = [s["id"] for s in ctx.states_list[2]]
        start = (
            check_point(point)
            if point is not None
            else teaching.default_start(settings)
        )
        request = {
            "optimizers": names,
            "hyper": _hyper_from(ids, hyper_values or []),
            "steps": steps,
            "schedule": schedule,
            "batch": batch,
            "start": list(start),
        }
        return (*_run_request(settings, request, int(n_clicks or 0)), "")

    # ---- a run setting edited: a refusal of the last press no longer
    # stands (it named a value the box no longer holds); the next press
    # checks again
    app.clientside_callback(
        "function() { return ''; }",
        Output("run-message", "children", allow_duplicate=True),
        Input("opt-steps", "value"),
        Input("batch-size", "value"),
        Input("schedule", "value"),
        Input({"type": "opt-on", "name": ALL}, "value"),
        Input(hyper_ids, "value"),
        prevent_initial_call=True,
    )

    # ---- runs -> the paths drawn and played in the browser; the slider
    app.clientside_callback(
        "function(r) { return window.dash_clientside.lossmap.runs(r); }",
        Output("step", "max"),
        Output("step", "value"),
        Input("runs", "data"),
    )
    app.clientside_callback(
        "function(n) { return window.dash_clientside.lossmap.play(n); }",
        Output("play", "id"),
        Input("play", "n_clicks"),
    )
    app.clientside_callback(
        "function(k) { return window.dash_clientside.lossmap.step(k); }",
        Output("step", "id"),
        Input("step", "value"),
    )
