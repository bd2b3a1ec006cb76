"""The Landscape tab's callbacks: page values in, checked, passed to
:mod:`teaching` and :mod:`overlays`, figures out.

Every server callback runs through :func:`guarded`: a refused value (an
:class:`~lossmap.explorer.validate.InputError`) becomes a message in the page,
any other error a one-line message (never a traceback), and the server keeps
serving. What must be instant happens in the browser (``assets/lossmap.js``,
hooked in here as clientside callbacks): a click or a drag moves the current
point, the fit curve, the residuals and the readout from the data and the
model's formula (the ``problem-spec`` store), and the server's fit confirms
them; a landscape figure drawn at an older point gets the point last chosen
back from the page. :func:`register` attaches one group of callbacks per
concern: the problem (model, presets, data edits), a shared link, the
defaults, the landscape and its overlays, the current point. The optimizer
runs on this tab are :mod:`runs_panel`'s; :mod:`lossmap.explorer.callbacks`
registers both and the Saved-stores tab (:mod:`research`).
"""

from __future__ import annotations

from typing import Any

from lossmap import toy
from lossmap.explorer import overlays, teaching
from lossmap.explorer.guard import guarded
from lossmap.explorer.validate import (
    FunctionSettings,
    InputError,
    ProblemSettings,
    check_name,
    check_point,
    function_settings,
    problem_settings,
)
from lossmap.plot._plotly import TRACE_INDEX

__all__ = ["SETTINGS_INPUTS", "guarded", "register", "settings_from"]

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
    ("data-edit", "data"),
]


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
    edit: Any = None,
) -> ProblemSettings | FunctionSettings:
    """Checked settings from the raw values of :data:`SETTINGS_INPUTS`
    (``edit``: the page's edited data points, or None for the preset's)."""
    mode = check_name("mode", mode, ("problem", "function"))
    region = (r0lo, r0hi, r1lo, r1hi)
    if mode == "function":
        return function_settings(
            function, region, steps, functions=teaching.function_names()
        )
    return problem_settings(
        model,
        preset,
        loss,
        delta,
        l2,
        region,
        steps,
        presets=toy.preset_names(),
        points=edit,
    )


def _overlays(value: Any) -> tuple[str, ...]:
    """The ticked overlays; anything unknown is ignored."""
    known = ("arrows", "curvature", "slices", "hover")
    if not isinstance(value, list):
        return ()
    return tuple(v for v in value if isinstance(v, str) and v in known)


def _criticals(settings: Any) -> tuple[Any, ...]:
    if isinstance(settings, FunctionSettings):
        return teaching.critical_points_for(settings)
    return ()


def _stamp() -> str:
    """A fresh token for a landscape figure (see ``lossmap.js``: the page
    puts its paths back once the figure with this token is drawn)."""
    import uuid

    return uuid.uuid4().hex[:12]


def _pending_for(pending: Any, mode: Any, preset: Any, function: Any) -> Any:
    """The restored state when it belongs to the current mode and data."""
    if not isinstance(pending, dict) or pending.get("mode", "problem") != mode:
        return None
    if mode == "function" and pending.get("function") != function:
        return None
    if mode == "problem" and pending.get("preset") != preset:
        return None
    return pending


def _carries_state(search: Any) -> bool:
    """The page's address holds a shared state that decodes."""
    from lossmap.explorer.share import decode_state

    try:
        return decode_state(search) is not None
    except ValueError:  # a broken link: `restore` reports it, defaults apply
        return False


#: How many values :data:`SETTINGS_INPUTS` gives a callback.
_N_SETTINGS = len(SETTINGS_INPUTS)


def setting_inputs() -> list[Any]:
    """An ``Input`` for each of :data:`SETTINGS_INPUTS`."""
    from dash import Input

    return [Input(i, p) for i, p in SETTINGS_INPUTS]


def setting_states() -> list[Any]:
    """A ``State`` for each of :data:`SETTINGS_INPUTS`."""
    from dash import State

    return [State(i, p) for i, p in SETTINGS_INPUTS]


def hyper_pattern() -> dict[str, Any]:
    """The id pattern of the optimizers' setting boxes."""
    from dash import ALL

    return {"type": "opt-hyper", "name": ALL, "key": ALL}


def register(app: Any) -> None:
    """Attach the Landscape tab's callbacks to ``app`` (the runs' are
    :func:`runs_panel.register`'s, attached after these)."""
    _register_problem(app)
    _register_link(app)
    _register_defaults(app)
    _register_landscape(app)
    _register_point(app)


def _register_problem(app: Any) -> None:
    """The header's hint, the model's presets and losses, the data edits."""
    from dash import Input, Output, State, ctx, no_update

    from lossmap.explorer.layout import loss_labels, loss_names

    settings_state = setting_states()

    # ---- the header's hint matches the tab (clicks work on the landscape)
    @app.callback(Output("header-hint", "children"), Input("tabs", "value"))
    def hint(tab: Any) -> Any:
        if tab == "research":
            return "open a saved surface store; hover to read values"
        return "click or drag on the landscape to set the parameters"

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
        from lossmap.toy.models import MODELS

        model = check_name("model", model, tuple(MODELS))
        task = "binary" if model == "logistic" else "regression"
        presets = list(toy.preset_names(task))
        names = loss_names(task)
        if task == "binary":  # BCE first
            names = tuple(sorted(names, key=lambda n: n != "bce"))
        new_preset, new_loss = preset, loss
        if preset not in presets:  # the task changed: its defaults
            new_preset = "binary-overlapping" if task == "binary" else presets[0]
            new_loss = names[0]
        elif loss not in names:
            new_loss = names[0]
        labels = loss_labels()
        # values that stay are not written again: a write would fire every
        # callback on them once more (the defaults, after a shared link's
        # state had been used up, put the default point back)
        return (
            presets,
            new_preset if new_preset != preset else no_update,
            [{"label": labels[k], "value": k} for k in names],
            new_loss if new_loss != loss else no_update,
        )

    # ---- data editing: outlier, noise, click on the fit panel, reset
    @app.callback(
        Output("data-edit", "data"),
        Output("data-message", "children"),
        Input("add-outlier", "n_clicks"),
        Input("add-noise", "n_clicks"),
        Input("reset-data", "n_clicks"),
        Input("fit-click", "data"),
        Input("preset", "value"),
        Input("model", "value"),
        State("noise-sd", "value"),
        State("noise-seed", "value"),
        State("fit-click-mode", "value"),
        State("pending", "data"),
        *settings_state,
        prevent_initial_call=True,
    )
    @guarded(2, 1)
    def edit(*args: Any) -> Any:
        from lossmap.explorer.validate import check_number

        trigger = ctx.triggered_id
        click, sd, seed, mode, pending = args[3], args[6], args[7], args[8], args[9]
        if trigger in ("reset-data", "preset", "model"):
            restored = _pending_for(pending, "problem", args[4], None)
            if trigger != "reset-data" and restored and restored.get("data"):
                return restored["data"], ""
            return None, ""
        settings = settings_from(*args[10:])
        if not isinstance(settings, ProblemSettings):
            return no_update, ""
        if trigger == "add-outlier":
            return teaching.edit_data(settings, "outlier"), ""
        if trigger == "add-noise":
            sd = check_number("noise σ", sd, minimum=0.0, maximum=1e3)
            seed = int(
                check_number("seed", seed, minimum=0, maximum=2**31, integer=True)
            )
            return teaching.edit_data(settings, "noise", sd=sd, seed=seed), ""
        if trigger == "fit-click" and isinstance(click, list) and len(click) >= 2:
            at = check_point(click[:2], "clicked point")
            if len(click) == 5:  # a data point dragged from click[3:] to at
                moved = check_point(click[3:], "dragged point")
                return teaching.edit_data(settings, "move", at=at, source=moved), ""
            action = "delete" if mode == "delete" else "add"
            return teaching.edit_data(settings, action, at=at), ""
        return no_update, ""


def _register_link(app: Any) -> None:
    """A shared link or a lesson: every control, and the state handed over
    in ``pending``; the page's state written into its address."""
    from dash import ALL, Input, Output, ctx, no_update
    from dash.exceptions import PreventUpdate

    hyper_ids = hyper_pattern()

    # ---- a shared link (or a lesson) -> every control
    restore_targets = [
        ("mode", "value"),
        ("model", "value"),
        ("preset", "value"),
        ("loss", "value"),
        ("delta", "value"),
        ("l2", "value"),
        ("function", "value"),
        ("view", "value"),
        ("overlays", "value"),
        ("grid-steps", "value"),
        ("opt-steps", "value"),
        ("batch-size", "value"),
        ("schedule", "value"),
    ]
    state_names = {
        "grid-steps": "grid",
        "opt-steps": "steps",
        "batch-size": "batch",
    }

    @app.callback(
        *[Output(i, p, allow_duplicate=True) for i, p in restore_targets],
        Output({"type": "opt-on", "name": ALL}, "value"),
        Output("pending", "data", allow_duplicate=True),
        Output("message", "children", allow_duplicate=True),
        Input("url", "search"),
        prevent_initial_call="initial_duplicate",
    )
    def restore(search: Any) -> Any:
        from lossmap.explorer.share import decode_state

        n = len(restore_targets)
        try:
            state = decode_state(search)
        except ValueError as exc:
            return (*[no_update] * (n + 2), str(exc))
        if state is None:
            raise PreventUpdate
        values = [
            state.get(state_names.get(i, i), no_update) for i, _ in restore_targets
        ]
        names = [o["id"]["name"] for o in ctx.outputs_list[n]]
        chosen = state.get("optimizers")
        ticks = (
            [[n_] if n_ in chosen else [] for n_ in names]
            if isinstance(chosen, list)
            else [no_update] * len(names)
        )
        pending = {
            "mode": state.get("mode", "problem"),
            "preset": state.get("preset"),
            "function": state.get("function"),
            **{k: state[k] for k in ("region", "point", "hyper", "data") if k in state},
        }
        return (*values, ticks, pending, "")

    @app.callback(
        Output("url", "search"),
        Input("lesson", "value"),
        prevent_initial_call=True,
    )
    def lesson(value: Any) -> Any:
        from lossmap.explorer.share import LESSONS, encode_state

        if value not in LESSONS:
            raise PreventUpdate
        return encode_state(LESSONS[value][1])

    app.clientside_callback(
        "function() { return window.dash_clientside.lossmap.share("
        "dash_clientside.callback_context); }",
        Output("url", "hash"),
        *[Input(i, p) for i, p in restore_targets],
        *[Input(i, p) for i, p in SETTINGS_INPUTS if i.startswith("range")],
        Input("point", "data"),
        Input("data-edit", "data"),
        Input({"type": "opt-on", "name": ALL}, "value"),
        Input(hyper_ids, "value"),
    )
    app.clientside_callback(
        "function(n) { return window.location.href; }",
        Output("copy-link", "content"),
        Input("copy-link", "n_clicks"),
        prevent_initial_call=True,
    )


def _register_defaults(app: Any) -> None:
    """Mode, data or surface: the default range, start and learning rates,
    which controls show (Huber's δ only for Huber); a link's state used up."""
    from dash import Input, Output, State, ctx, no_update
    from dash.exceptions import PreventUpdate

    hyper_ids = hyper_pattern()

    # ---- Huber's δ only for Huber
    @app.callback(Output("delta-box", "style"), Input("loss", "value"))
    def delta_visible(loss: Any) -> Any:
        return {} if loss == "huber" else {"display": "none"}

    # ---- mode / data / surface -> default range, start, learning rates
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
        Output("residual-panel", "style"),
        Output(hyper_ids, "value"),
        Output("pending", "data"),
        Input("mode", "value"),
        Input("preset", "value"),
        Input("function", "value"),
        Input("pending", "data"),
        State("url", "search"),
    )
    @guarded(14, None)
    def defaults(
        mode: Any, preset: Any, function: Any, pending: Any, search: Any
    ) -> Any:
        if ctx.triggered_id is None and pending is None and _carries_state(search):
            # the page opened from a shared link: `restore` sets every control
            # and hands its state over in `pending`. Answering this first call
            # (made with the layout's values) could land after that hand-over
            # and replace the link's point with the layout's default.
            raise PreventUpdate
        mode = check_name("mode", mode, ("problem", "function"))
        show, hide = {}, {"display": "none"}
        settings: ProblemSettings | FunctionSettings
        if mode == "function":
            name = check_name("surface", function, teaching.function_names())
            region = teaching.landscape_for(FunctionSettings(name, ((0, 1), (0, 1))))
            settings = FunctionSettings(name, region.region)
            names, panels = region.param_names, (hide, show, hide, show)
        else:
            preset = check_name("data", preset, toy.preset_names())
            reg = toy.dataset(preset).region
            settings = ProblemSettings("line", preset, "mse", 1.0, 0.0, reg)
            names, panels = ("w", "b"), (show, hide, show, hide)
        (a, b), (c, d) = settings.region
        point: Any = list(teaching.default_start(settings))
        hyper = teaching.default_hyper(settings)
        restored = _pending_for(pending, mode, preset, function)
        if restored is not None:  # a shared link: its values, not the defaults
            region = restored.get("region")
            if isinstance(region, list) and len(region) == 4:
                a, b, c, d = region
            point = restored.get("point", point)
            for name, values in (restored.get("hyper") or {}).items():
                if name in hyper and isinstance(values, dict):
                    hyper[name].update(values)
        ids = ctx.outputs_list[-2]
        values = [hyper.get(o["id"]["name"], {}).get(o["id"]["key"]) for o in ids]
        if pending is None and ctx.triggered_id == "pending":
            raise PreventUpdate
        # a restored state is used up; otherwise `pending` is left as it is
        # (writing None could erase a state `restore` has just handed over)
        left = None if restored is not None else no_update
        return (a, b, c, d, point, names[0], names[1], *panels, panels[2], values, left)


def _register_landscape(app: Any) -> None:
    """Settings: the landscape figure with its overlays, the problem's data
    for the page, the slices; the page's hook on each new figure."""
    from dash import Input, Output, State, no_update

    settings_in = setting_inputs()

    # ---- settings -> the landscape (the expensive figure; no paths)
    @app.callback(
        Output("landscape", "figure"),
        Output("message", "children"),
        *settings_in,
        Input("view", "value"),
        Input("overlays", "value"),
        State("point", "data"),
    )
    @guarded(2, 1)
    def landscape(*args: Any) -> Any:
        settings = settings_from(*args[:_N_SETTINGS])
        view, shown, point = args[_N_SETTINGS:]
        shown = _overlays(shown)
        view = check_name("view", view, ("2d", "3d", "3d-linear"))
        current = check_point(point) if point is not None else None
        if current is None:
            current = teaching.default_start(settings)
        fig = teaching.landscape_view(settings, current=current, view=view)
        meta = dict(fig.layout.meta or {})
        meta.update(key=settings.key(), view=view, stamp=_stamp())
        fig.update_layout(meta=meta)
        if view == "2d":
            fig.update_layout(dragmode=False)
            empty = {"type": "scatter", "x": [], "y": [], "showlegend": False}
            arrows = overlays.gradient_arrows(settings) if "arrows" in shown else None
            fig.add_trace(arrows or {**empty, "uid": "arrows"})
            curv = (
                overlays.curvature_at(settings, current)
                if "curvature" in shown
                else None
            )
            fig.add_trace(overlays.curvature_trace(settings, current, curv))
        theta, note = teaching.minimum_for(settings)
        return fig, note if theta is None else ""

    # ---- settings -> what the page needs to compute the fit itself
    @app.callback(Output("problem-spec", "data"), *settings_in)
    @guarded(1, None)
    def spec(*args: Any) -> Any:
        return teaching.problem_spec(settings_from(*args))

    app.clientside_callback(
        "function(s) { return window.dash_clientside.lossmap.spec(s); }",
        Output("problem-spec", "id"),
        Input("problem-spec", "data"),
    )
    # the message under the landscape, again in the controls' run box
    app.clientside_callback(
        "function(m) { return m; }",
        Output("settings-message", "children"),
        Input("message", "children"),
    )
    app.clientside_callback(
        "function(f, r) { return window.dash_clientside.lossmap.figure(f, r); }",
        Output("landscape", "id"),
        Input("landscape", "figure"),
        State("runs", "data"),
    )

    # ---- slices through θ* (only when asked for)
    @app.callback(
        Output("slices", "figure"),
        Output("slices-panel", "style"),
        Input("overlays", "value"),
        *settings_in,
    )
    @guarded(2, None)
    def slices(shown: Any, *args: Any) -> Any:
        if "slices" not in _overlays(shown):
            return no_update, {"display": "none"}
        return overlays.slices_figure(settings_from(*args)), {}


def _register_point(app: Any) -> None:
    """The current point: the page's record of it, a 3-D click, and the
    fit panel, readout, residuals and curvature at it."""
    from dash import Input, Output, State, no_update

    settings_in = setting_inputs()

    # the point last chosen, for the page to put back on a late figure
    app.clientside_callback(
        "function(p) { return window.dash_clientside.lossmap.point(p); }",
        Output("point", "id"),
        Input("point", "data"),
    )
    app.clientside_callback(
        "function(cd) { return window.dash_clientside.lossmap.click3d(cd); }",
        Output("point", "data", allow_duplicate=True),
        Input("landscape", "clickData"),
        prevent_initial_call=True,
    )

    # ---- the point -> fit panel, readout, residual panel, curvature
    @app.callback(
        Output("fit", "figure"),
        Output("readout", "children"),
        Output("critical-points", "children"),
        Output("residual-loss", "figure"),
        Output("landscape", "figure", allow_duplicate=True),
        Input("point", "data"),
        *settings_in,
        Input("overlays", "value"),
        State("view", "value"),
        prevent_initial_call="initial_duplicate",
    )
    @guarded(5, 1)
    def point_changed(point: Any, *args: Any) -> Any:
        from dash import Patch, html
        from dash.exceptions import PreventUpdate

        shown, view = _overlays(args[_N_SETTINGS]), args[_N_SETTINGS + 1]
        try:
            settings = settings_from(*args[:_N_SETTINGS])
        except InputError:  # reported once, under the landscape
            raise PreventUpdate from None
        if point is None:
            point = teaching.default_start(settings)
        w, b = check_point(point)
        text = teaching.readout(settings, (w, b))
        patch: Any = no_update
        if "curvature" in shown and view == "2d":
            curv = overlays.curvature_at(settings, (w, b))
            text += "\n" + curv.sentence()
            kinds = len({cp.kind for cp in _criticals(settings)})
            patch = Patch()
            patch["data"][6 + kinds + 1] = overlays.curvature_trace(
                settings, (w, b), curv
            )
            # and the marker (the page may have drawn the figure elsewhere)
            patch["data"][TRACE_INDEX["current"]]["x"] = [w]
            patch["data"][TRACE_INDEX["current"]]["y"] = [b]
            # a new stamp: the page redraws its paths once this is drawn
            patch["layout"]["meta"]["stamp"] = _stamp()
        if isinstance(settings, ProblemSettings):
            return (
                teaching.fit_view(settings, (w, b)),
                text,
                no_update,
                overlays.residual_loss_figure(settings, (w, b)),
                patch,
            )
        crit = [html.Li(s) for s in teaching.critical_points_view(settings)]
        return no_update, text, crit, no_update, patch
