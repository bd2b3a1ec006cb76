"""Dash callbacks: page values in, checked, passed to :mod:`teaching`, figures out.

Every callback runs through :func:`guarded`: a refused value (an
:class:`~lossmap.explorer.validate.InputError`) becomes a message in the page,
any other error a one-line message (never a traceback), and the server keeps
serving. A click on the landscape is handled in the browser first: a
clientside callback moves the current-point marker (``Plotly.restyle`` of one
trace, so the 201×201 heatmap is neither resent nor recomputed) and writes the
point into the ``point`` store; one server round trip then brings the fit
panel and the readout.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from lossmap import toy
from lossmap.explorer import research, teaching
from lossmap.explorer.validate import (
    FunctionSettings,
    InputError,
    ProblemSettings,
    check_name,
    check_point,
    function_settings,
    problem_settings,
    run_settings,
)
from lossmap.plot._plotly import TRACE_INDEX

#: Index of the current-point trace in the 3-D figure (surface, θ*, θ₀, current).
CURRENT_3D = 3

__all__ = ["SETTINGS_INPUTS", "guarded", "register", "settings_from"]

log = logging.getLogger("lossmap.explorer")

#: (component id, property) of every control that defines the landscape.
SETTINGS_INPUTS = [
    ("mode", "value"),
    ("model", "value"),
    ("preset", "value"),
    ("loss", "value"),
    ("delta", "value"),
    ("l2", "value"),
    ("range0-min", "value"),
    ("range0-max", "value"),
    ("range1-min", "value"),
    ("range1-max", "value"),
    ("grid-steps", "value"),
    ("function", "value"),
]

BINARY_LOSSES = ("bce", "mse")
REGRESSION_LOSSES = ("mse", "mae", "huber", "log_cosh")


def settings_from(
    mode: Any,
    model: Any,
    preset: Any,
    loss: Any,
    delta: Any,
    l2: Any,
    r0lo: Any,
    r0hi: Any,
    r1lo: Any,
    r1hi: Any,
    steps: Any,
    function: Any,
) -> ProblemSettings | FunctionSettings:
    """Checked settings from the raw values of :data:`SETTINGS_INPUTS`."""
    mode = check_name("mode", mode, ("problem", "function"))
    region = (r0lo, r0hi, r1lo, r1hi)
    if mode == "function":
        return function_settings(
            function, region, steps, functions=teaching.function_names()
        )
    return problem_settings(
        model, preset, loss, delta, l2, region, steps, presets=toy.preset_names()
    )


def guarded(n_outputs: int, message_at: int | None) -> Callable[..., Any]:
    """Turn errors of a callback into a message output (or a silent no-op)."""

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
                text = str(exc)
            except Exception as exc:  # the page must never show a traceback
                log.exception("explorer callback %s failed", fn.__name__)
                text = f"could not update the view: {type(exc).__name__}: {exc}"
            out = [no_update] * n_outputs
            if message_at is None:
                raise PreventUpdate
            out[message_at] = text
            return out if n_outputs > 1 else out[0]

        return inner

    return wrap


def _runs_for(settings: Any, stored: Any) -> tuple[list[teaching.RunRecord], Any, Any]:
    """Runs of the page's store that belong to ``settings`` (else none)."""
    if not isinstance(stored, dict) or stored.get("key") != settings.key():
        return [], None, None
    start = check_point(stored.get("start"), "start")
    return teaching.runs_from_json(stored.get("runs")), start, stored.get("id")


def register(app: Any, *, store_root: Any = None) -> None:
    """Attach every callback to ``app``."""
    from dash import Input, Output, State, no_update

    settings_in = [Input(i, p) for i, p in SETTINGS_INPUTS]
    settings_state = [State(i, p) for i, p in SETTINGS_INPUTS]
    n_settings = len(SETTINGS_INPUTS)

    # ---- model -> the presets and losses that fit it
    @app.callback(
        Output("preset", "options"),
        Output("preset", "value"),
        Output("loss", "options"),
        Output("loss", "value"),
        Input("model", "value"),
        State("preset", "value"),
        State("loss", "value"),
    )
    @guarded(4, None)
    def model_changed(model: Any, preset: Any, loss: Any) -> Any:
        from lossmap.explorer.layout import LOSS_LABELS

        model = check_name("model", model, ("line", "tanh", "logistic"))
        task = "binary" if model == "logistic" else "regression"
        presets = list(toy.preset_names(task))
        losses = BINARY_LOSSES if task == "binary" else REGRESSION_LOSSES
        if preset not in presets:  # the task changed: its defaults
            preset = "binary-overlapping" if task == "binary" else presets[0]
            loss = losses[0]
        elif loss not in losses:
            loss = losses[0]
        return (
            presets,
            preset,
            [{"label": LOSS_LABELS[k], "value": k} for k in losses],
            loss,
        )

    # ---- Huber's δ only for Huber
    @app.callback(Output("delta-box", "style"), Input("loss", "value"))
    def delta_visible(loss: Any) -> Any:
        return {} if loss == "huber" else {"display": "none"}

    # ---- mode / data / surface -> default grid range, start point, panels
    @app.callback(
        Output("range0-min", "value"),
        Output("range0-max", "value"),
        Output("range1-min", "value"),
        Output("range1-max", "value"),
        Output("point", "data"),
        Output("axis0-name", "children"),
        Output("axis1-name", "children"),
        Output("problem-controls", "style"),
        Output("function-controls", "style"),
        Output("fit-panel", "style"),
        Output("critical-panel", "style"),
        Input("mode", "value"),
        Input("preset", "value"),
        Input("function", "value"),
    )
    @guarded(11, None)
    def defaults(mode: Any, preset: Any, function: Any) -> Any:
        mode = check_name("mode", mode, ("problem", "function"))
        show, hide = {}, {"display": "none"}
        if mode == "function":
            name = check_name("surface", function, teaching.function_names())
            land = teaching.landscape_for(FunctionSettings(name, ((0, 1), (0, 1))))
            region = land.region
            names, panels = land.param_names, (hide, show, hide, show)
        else:
            preset = check_name("data", preset, toy.preset_names())
            region = toy.dataset(preset).region
            names, panels = ("w", "b"), (show, hide, show, hide)
        (a, b), (c, d) = region
        point = list(teaching.default_point(region))
        return (a, b, c, d, point, names[0], names[1], *panels)

    # ---- settings -> the landscape (the expensive figure)
    @app.callback(
        Output("landscape", "figure"),
        Output("message", "children"),
        *settings_in,
        Input("view", "value"),
        Input("runs", "data"),
        State("point", "data"),
    )
    @guarded(2, 1)
    def landscape(*args: Any) -> Any:
        settings = settings_from(*args[:n_settings])
        view, stored, point = args[n_settings:]
        view = check_name("view", view, ("2d", "3d"))
        current = check_point(point) if point is not None else None
        if current is None:
            current = teaching.default_point(settings.region)
        runs, start, run_id = _runs_for(settings, stored)
        fig = teaching.landscape_view(
            settings, current=current, runs=runs, start=start, view=view
        )
        fig.update_layout(meta={"run": run_id, "view": view})
        theta, note = teaching.minimum_for(settings)
        return fig, note if theta is None else ""

    # ---- a click in the page -> the point store, and the current-point
    # marker moved right there in the browser (no 201x201 figure resent)
    app.clientside_callback(
        """
        function(cd) {
            if (!cd || !cd.points || !cd.points.length) {
                return window.dash_clientside.no_update;
            }
            const p = cd.points[0];
            const gd = document.querySelector("#landscape .js-plotly-plot");
            try {
            if (gd && window.Plotly && gd._fullData && gd._fullData.length) {
                const is3d = gd._fullData[0].type === "surface";
                const idx = is3d ? CURRENT3D : CURRENT;
                if (!is3d) {
                    // move the drawn marker at once (a full restyle redraws
                    // the whole heatmap, tens of milliseconds)...
                    const fl = gd._fullLayout;
                    gd.querySelectorAll(".scatterlayer .trace").forEach(function(g) {
                        const d = g.__data__;
                        const pt = g.querySelector(".point");
                        if (d && d[0] && d[0].trace && d[0].trace.index === idx && pt) {
                            pt.setAttribute("transform", "translate(" +
                                fl.xaxis.d2p(p.x) + "," + fl.yaxis.d2p(p.y) + ")");
                        }
                    });
                }
                // ...and the figure's own record of the point, without a
                // replot, so later redraws (zoom, hover) agree
                const t = gd.data[idx];
                if (t) { t.x = [p.x]; t.y = [p.y]; if (is3d) { t.z = [p.z]; } }
                const f = gd._fullData[idx];
                if (f) { f.x = [p.x]; f.y = [p.y]; if (is3d) { f.z = [p.z]; } }
                const c = gd.calcdata && gd.calcdata[idx];
                if (c && c[0]) { c[0].x = p.x; c[0].y = p.y; }
                if (is3d) {
                    window.Plotly.restyle(
                        gd, {x: [[p.x]], y: [[p.y]], z: [[p.z]]}, [idx]);
                }
            }
            } catch (err) {
                // the marker is cosmetic: the point still goes to the server
                console.warn("lossmap: could not move the marker", err);
            }
            return [p.x, p.y];
        }
        """.replace("CURRENT3D", str(CURRENT_3D)).replace(
            "CURRENT", str(TRACE_INDEX["current"])
        ),
        Output("point", "data", allow_duplicate=True),
        Input("landscape", "clickData"),
        prevent_initial_call=True,
    )

    # ---- the point -> fit panel and readout
    @app.callback(
        Output("fit", "figure"),
        Output("readout", "children"),
        Output("critical-points", "children"),
        Input("point", "data"),
        *settings_in,
    )
    @guarded(3, 1)
    def point_changed(point: Any, *args: Any) -> Any:
        from dash import html
        from dash.exceptions import PreventUpdate

        try:
            settings = settings_from(*args)
        except InputError:  # reported once, under the landscape
            raise PreventUpdate from None
        if point is None:
            point = teaching.default_point(settings.region)
        w, b = check_point(point)
        text = teaching.readout(settings, (w, b))
        if isinstance(settings, ProblemSettings):
            return teaching.fit_view(settings, (w, b)), text, no_update
        crit = [html.Li(s) for s in teaching.critical_points_view(settings)]
        return no_update, text, crit

    # ---- run -> optimizer paths
    @app.callback(
        Output("runs", "data"),
        Output("run-message", "children"),
        Input("run", "n_clicks"),
        State("point", "data"),
        State("optimizers", "value"),
        State("lr", "value"),
        State("momentum", "value"),
        State("opt-steps", "value"),
        State("schedule", "value"),
        *settings_state,
        prevent_initial_call=True,
    )
    @guarded(2, 1)
    def run(
        n_clicks: Any,
        point: Any,
        opts: Any,
        lr: Any,
        mom: Any,
        steps: Any,
        schedule: Any,
        *args: Any,
    ) -> Any:
        settings = settings_from(*args)
        rs = run_settings(
            opts,
            lr,
            mom,
            steps,
            schedule,
            available=teaching.optimizer_names(),
            schedules=teaching.schedule_names(),
        )
        start = (
            check_point(point)
            if point is not None
            else teaching.default_point(settings.region)
        )
        runs = teaching.run_optimizers(settings, rs, start)
        return {
            "key": settings.key(),
            "start": list(start),
            "id": int(n_clicks or 0),
            "runs": [r.to_json() for r in runs],
        }, ""

    # ---- runs -> loss-vs-step and status lines
    @app.callback(
        Output("loss-curves", "figure"),
        Output("run-status", "children"),
        Input("runs", "data"),
        *settings_in,
    )
    @guarded(2, None)  # bad settings are reported under the landscape
    def runs_view(stored: Any, *args: Any) -> Any:
        settings = settings_from(*args)
        runs, _, _ = _runs_for(settings, stored)
        lines = (
            teaching.status_lines(runs) if runs else ["choose optimizers and press run"]
        )
        return teaching.loss_view(runs), "\n".join(lines)

    # ---- play the paths' animation once after a run
    app.clientside_callback(
        """
        function(fig, last) {
            const meta = (fig && fig.layout && fig.layout.meta) || {};
            if (!fig || !fig.frames || !fig.frames.length || meta.run == null ||
                meta.run === last || meta.view !== "2d") {
                return window.dash_clientside.no_update;
            }
            const host = document.getElementById("landscape");
            if (host) { host.dataset.animated = "playing"; }
            setTimeout(function() {
                const gd = document.querySelector("#landscape .js-plotly-plot");
                const done = function() {
                    if (host) { host.dataset.animated = String(meta.run); }
                };
                if (gd && window.Plotly) {
                    window.Plotly.animate(gd, null, {
                        frame: {duration: 45, redraw: true},
                        transition: {duration: 0}, mode: "immediate"})
                        .then(done, done);
                } else {
                    done();
                }
            }, 80);
            return meta.run;
        }
        """,
        Output("animated", "data"),
        Input("landscape", "figure"),
        State("animated", "data"),
    )

    research.register(app, store_root=store_root)
