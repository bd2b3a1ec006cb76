"""The explorer's page: controls, graphs and stores (no behaviour here).

Component ids are part of the app's interface (the callbacks, the page's
script ``assets/lossmap.js`` and the browser tests use them): ``landscape``,
``fit``, ``readout``, ``message``, ``loss``, ``model``, ``preset``, ``delta``,
``l2``, ``run``, ``run-status``, ``play``, ``step``, ``research-graph``…
Option lists and labels come from the library's registries (models, losses,
optimizers and their settings, data presets, test surfaces); the styles are
in ``assets/lossmap.css``.
"""

from __future__ import annotations

from typing import Any

from lossmap import losses, toy
from lossmap.explorer.share import LESSONS
from lossmap.explorer.validate import DEFAULT_GRID_STEPS, loss_names

__all__ = [
    "HELP",
    "NO_STORE",
    "build_layout",
    "loss_labels",
    "loss_names",
    "model_labels",
    "optimizer_label",
    "placeholder_figure",
]

#: Short help shown when hovering a control (``title``) and under "?".
HELP = {
    "mode": "Fit a model to data, or walk a classic test surface.",
    "model": "The model whose two parameters (w, b) the landscape shows.",
    "loss": "MSE squares each residual (outliers weigh a lot); MAE takes its "
    "absolute value (robust, but kinked); Huber is squared within δ of the "
    "data and absolute beyond; log-cosh is a smooth Huber.",
    "delta": "Huber's δ: residuals smaller than δ are squared, larger ones "
    "count linearly.",
    "l2": "L2 strength λ adds λ·(w² + b²): it pulls the minimum towards 0.",
    "range": "The part of the (w, b) plane that is drawn.",
    "grid": "Grid points per axis (more: finer, slower).",
    "view": "2-D heatmap, or a 3-D surface whose height is the loss (log) "
    "or the loss itself (linear).",
    "optimizers": "Tick the optimizers to race from the current point. "
    "lr is the learning rate; β (momentum) and β₁, β₂ (Adam) are how much "
    "of the past gradients each step keeps.",
    "steps": "The most updates each optimizer makes.",
    "schedule": "How the learning rate changes over the run.",
    "batch": "SGD's mini-batch: how many data points each gradient uses.",
    "step": "Scrub through the run: the paths, the current point and the fit "
    "follow the chosen step.",
    "noise": "Add Gaussian noise (this standard deviation, this seed) to y.",
    "edit": "Click on the fit panel to add a data point there, or to delete "
    "the nearest one; the landscape, θ* and the runs follow the new data.",
    "overlays": "Arrows point downhill (−gradient). Curvature: the Hessian's "
    "eigen-directions at the current point and its condition number κ "
    "(large κ: a long thin valley, slow for gradient descent). Slices: the "
    "loss along each parameter through the minimum θ*.",
}

_MODEL_WORDS = {"line": "line", "tanh": "tanh neuron", "logistic": "logistic"}


def model_labels() -> dict[str, str]:
    """Model name → label, from :data:`lossmap.toy.MODELS`."""
    from lossmap.toy.models import MODELS

    return {
        name: f"{_MODEL_WORDS.get(name, name)} {m.formula}"
        if name == "line"
        else _MODEL_WORDS.get(name, name)
        for name, m in MODELS.items()
    }


def loss_labels() -> dict[str, str]:
    """Loss name → label, from the registry (``BCE`` for short)."""
    short = {"binary cross-entropy": "BCE"}
    return {
        n: short.get(losses.get(n).label, losses.get(n).label)
        for n in losses.available()
    }


def optimizer_label(name: str) -> str:
    """How an optimizer reads on the page (registry name, nicely cased)."""
    nice = {
        "gd": "GD",
        "sgd": "SGD",
        "adagrad": "AdaGrad",
        "rmsprop": "RMSprop",
        "adam": "Adam",
        "adamw": "AdamW",
        "nesterov": "Nesterov",
    }
    return nice.get(name, name)


#: The small explanatory graphs: no zoom bar (on a touch screen it is always
#: shown, over the graph's title).
_SMALL_GRAPH = {"displaylogo": False, "responsive": True, "displayModeBar": False}


def _radio(id_: Any, options: dict[str, str], value: str) -> Any:
    from dash import dcc

    return dcc.RadioItems(
        id=id_,
        options=[{"label": v, "value": k} for k, v in options.items()],
        value=value,
        inline=True,
        inputStyle={"marginRight": "3px"},
    )


def _number(id_: Any, value: Any, **kw: Any) -> Any:
    """A text box for a number: any spelling (``0.015``, ``1e-3``) is sent
    as typed and checked on the server; the browser validates nothing (a
    ``type=number`` box with a step refuses values off the step)."""
    from dash import dcc

    return dcc.Input(
        id=id_,
        type="text",
        inputMode="decimal",
        value=value,
        debounce=True,
        autoComplete="off",
        className="num",
        **kw,
    )


def _h3(text: str, help_key: str | None = None) -> Any:
    from dash import html

    title = HELP.get(help_key or "", "")
    children: list[Any] = [text]
    if title:
        children.append(html.Span("?", className="help", title=title))
    return html.H3(children, title=title or None)


def _optimizer_rows(
    optimizers: tuple[str, ...], hyper: dict[str, dict[str, float]]
) -> list[Any]:
    from dash import dcc, html

    from lossmap.explorer.teaching import hyper_label

    rows = []
    chosen = [o for o in ("gd", "momentum", "adam") if o in optimizers]
    for name in optimizers:
        cells = [
            dcc.Checklist(
                id={"type": "opt-on", "name": name},
                options=[{"label": optimizer_label(name), "value": name}],
                value=[name] if name in chosen else [],
                inputStyle={"marginRight": "3px"},
                className="opt-name",
            )
        ]
        for key, value in hyper.get(name, {}).items():
            cells.append(
                html.Label(
                    [
                        html.Span("lr" if key == "lr" else hyper_label(key)),
                        _number({"type": "opt-hyper", "name": name, "key": key}, value),
                    ],
                    className="hyper",
                    title=f"{optimizer_label(name)} {hyper_label(key)}",
                )
            )
        rows.append(html.Div(cells, className="opt-row"))
    return rows


def _teaching_controls(
    functions: tuple[str, ...],
    optimizers: tuple[str, ...],
    schedules: tuple[str, ...],
    hyper: dict[str, dict[str, float]],
) -> Any:
    from dash import dcc, html

    presets = toy.preset_names("regression")
    region = toy.dataset(presets[0]).region
    modes = {"problem": "model + data"}
    if functions:
        modes["function"] = "test surface"
    labels = loss_labels()
    return html.Div(
        className="controls",
        id="controls",
        children=[
            html.Div(
                className="controls-scroll",
                children=[
                    _h3("What to explore", "mode"),
                    _radio("mode", modes, "problem"),
                    html.Div(
                        id="problem-controls",
                        children=[
                            _h3("Model", "model"),
                            _radio("model", model_labels(), "line"),
                            html.H3("Data"),
                            dcc.Dropdown(
                                id="preset",
                                options=list(presets),
                                value=presets[0],
                                clearable=False,
                            ),
                            html.Div(
                                className="row",
                                children=[
                                    html.Button(
                                        "add an outlier",
                                        id="add-outlier",
                                        n_clicks=0,
                                        className="small",
                                    ),
                                    html.Button(
                                        "reset data",
                                        id="reset-data",
                                        n_clicks=0,
                                        className="small",
                                    ),
                                ],
                            ),
                            html.Div(
                                className="row",
                                title=HELP["noise"],
                                children=[
                                    "noise σ",
                                    _number("noise-sd", 0.1),
                                    "seed",
                                    _number("noise-seed", 0),
                                    html.Button(
                                        "add",
                                        id="add-noise",
                                        n_clicks=0,
                                        className="small",
                                    ),
                                ],
                            ),
                            html.Div(
                                title=HELP["edit"],
                                children=_radio(
                                    "fit-click-mode",
                                    {
                                        "add": "fit click adds a point",
                                        "delete": "… deletes one",
                                    },
                                    "add",
                                ),
                            ),
                            html.Div(id="data-message", className="message"),
                            _h3("Loss", "loss"),
                            _radio(
                                "loss",
                                {k: labels[k] for k in loss_names("regression")},
                                "mse",
                            ),
                            html.Div(
                                id="delta-box",
                                style={"display": "none"},
                                title=HELP["delta"],
                                children=[
                                    html.Div("Huber δ", style={"marginTop": "4px"}),
                                    dcc.Slider(
                                        id="delta",
                                        min=0.05,
                                        max=2.0,
                                        step=0.05,
                                        value=0.5,
                                        marks={0.1: "0.1", 0.5: "0.5", 1: "1", 2: "2"},
                                        updatemode="mouseup",
                                    ),
                                ],
                            ),
                            html.Div(
                                className="row",
                                title=HELP["l2"],
                                children=["L2 strength", _number("l2", 0.0)],
                            ),
                        ],
                    ),
                    html.Div(
                        id="function-controls",
                        style={"display": "none"},
                        children=[
                            html.H3("Surface"),
                            dcc.Dropdown(
                                id="function",
                                options=list(functions),
                                value=functions[0] if functions else None,
                                clearable=False,
                            ),
                        ],
                    ),
                    _h3("Grid range", "range"),
                    html.Div(
                        className="row",
                        children=[
                            html.Span("w", id="axis0-name", className="axis-name"),
                            _number("range0-min", region[0][0]),
                            _number("range0-max", region[0][1]),
                        ],
                    ),
                    html.Div(
                        className="row",
                        children=[
                            html.Span("b", id="axis1-name", className="axis-name"),
                            _number("range1-min", region[1][0]),
                            _number("range1-max", region[1][1]),
                        ],
                    ),
                    html.Div(
                        className="row",
                        title=HELP["grid"],
                        children=["grid", _number("grid-steps", DEFAULT_GRID_STEPS)],
                    ),
                    html.Div(
                        title=HELP["view"],
                        children=_radio(
                            "view",
                            {"2d": "2-D", "3d": "3-D log", "3d-linear": "3-D linear"},
                            "2d",
                        ),
                    ),
                    _h3("Show", "overlays"),
                    dcc.Checklist(
                        id="overlays",
                        options=[
                            {"label": "downhill arrows", "value": "arrows"},
                            {"label": "curvature at the point", "value": "curvature"},
                            {"label": "slices through θ*", "value": "slices"},
                            {"label": "hover moves (w, b)", "value": "hover"},
                        ],
                        value=[],
                        inline=True,
                        inputStyle={"marginRight": "3px"},
                    ),
                    _h3("Optimizers", "optimizers"),
                    html.Div(_optimizer_rows(optimizers, hyper), id="opt-table"),
                    html.Div(
                        className="row",
                        title=HELP["steps"],
                        children=["steps", _number("opt-steps", 100)],
                    ),
                    html.Div(
                        className="row",
                        title=HELP["batch"],
                        children=["SGD batch", _number("batch-size", "")],
                    ),
                    html.Div(
                        className="row",
                        title=HELP["schedule"],
                        children=[
                            "schedule",
                            dcc.Dropdown(
                                id="schedule",
                                options=list(schedules),
                                value=schedules[0],
                                clearable=False,
                                style={"width": "140px"},
                            ),
                        ],
                    ),
                ],
            ),
            html.Div(
                className="run-box",
                children=[
                    # the landscape's message (a refused grid range, L2…)
                    # again next to the controls: on a phone the landscape
                    # is a screen away (shown only there, see lossmap.css)
                    html.Div(id="settings-message", className="message"),
                    html.Button("run from the current point", id="run", n_clicks=0),
                    html.Div(id="run-message", className="message"),
                ],
            ),
        ],
    )


def _player() -> Any:
    from dash import dcc, html

    return html.Div(
        className="player",
        id="player",
        title=HELP["step"],
        children=[
            html.Button("▶ play", id="play", n_clicks=0, disabled=True),
            html.Div(
                dcc.Slider(
                    id="step",
                    min=0,
                    max=1,
                    step=1,
                    value=0,
                    marks=None,
                    updatemode="drag",
                    tooltip={"placement": "bottom", "always_visible": False},
                ),
                className="step-slider",
            ),
            html.Span("step 0", id="step-label", className="step-label"),
        ],
    )


def _teaching_tab(
    functions: tuple[str, ...],
    optimizers: tuple[str, ...],
    schedules: tuple[str, ...],
    hyper: dict[str, dict[str, float]],
) -> Any:
    from dash import dcc, html

    return html.Div(
        className="main",
        children=[
            _teaching_controls(functions, optimizers, schedules, hyper),
            html.Div(
                className="col col-landscape",
                children=[
                    html.Div(
                        className="panel",
                        id="landscape-panel",
                        children=[
                            dcc.Loading(
                                dcc.Graph(
                                    id="landscape",
                                    className="graph-landscape",
                                    config={
                                        "displaylogo": False,
                                        "scrollZoom": False,
                                        "responsive": True,
                                        # clicks and drags set (w, b): no zoom bar
                                        "displayModeBar": False,
                                    },
                                ),
                                delay_show=250,
                                overlay_style={"visibility": "visible", "opacity": 0.6},
                                type="circle",
                                # the spinner lets clicks through (lossmap.css)
                                parent_className="loading-landscape",
                            ),
                            _player(),
                        ],
                    ),
                    html.Div(id="message", className="message"),
                ],
            ),
            html.Div(
                className="col col-side",
                children=[
                    html.Div(id="readout", className="readout"),
                    html.Div(
                        id="fit-panel",
                        className="panel",
                        children=[
                            dcc.Graph(
                                id="fit",
                                className="graph-fit",
                                config={
                                    "displaylogo": False,
                                    "responsive": True,
                                    "displayModeBar": False,
                                },
                            ),
                        ],
                    ),
                    html.Div(
                        id="residual-panel",
                        className="panel",
                        children=[
                            dcc.Graph(
                                id="residual-loss",
                                className="graph-small",
                                config=_SMALL_GRAPH,
                            )
                        ],
                    ),
                    html.Div(
                        id="slices-panel",
                        className="panel",
                        style={"display": "none"},
                        children=[
                            dcc.Graph(
                                id="slices",
                                className="graph-small",
                                config=_SMALL_GRAPH,
                            )
                        ],
                    ),
                    html.Div(
                        id="critical-panel",
                        className="panel meta",
                        style={"display": "none"},
                        children=[
                            html.B("Critical points"),
                            html.Ul(id="critical-points"),
                        ],
                    ),
                    html.Div(
                        className="panel",
                        children=[
                            dcc.Graph(
                                id="loss-curves",
                                className="graph-curves",
                                config={"displaylogo": False, "responsive": True},
                            ),
                            html.Div(id="run-status", className="status"),
                        ],
                    ),
                ],
            ),
        ],
    )


def placeholder_figure(text: str) -> dict[str, Any]:
    """An empty graph that says ``text`` (no axes: an unopened graph showed
    Plotly's default axes, 0 to 6 by -1 to 4, as if they meant something)."""
    return {
        "data": [],
        "layout": {
            "xaxis": {"visible": False},
            "yaxis": {"visible": False},
            "annotations": [
                {
                    "text": text,
                    "showarrow": False,
                    "xref": "paper",
                    "yref": "paper",
                    "x": 0.5,
                    "y": 0.5,
                    "font": {"size": 15, "color": "#4a5568"},
                }
            ],
            "paper_bgcolor": "white",
            "plot_bgcolor": "white",
            "margin": {"l": 10, "r": 10, "t": 10, "b": 10},
        },
    }


#: What the Saved-stores graph says before a store is open.
NO_STORE = {
    True: "choose a store on the left",
    False: "no store folder: start with `lossmap explore PATH`",
}


def _research_tab(has_root: bool) -> Any:
    from dash import dcc, html

    hint = (
        "Stores (*.zarr) and checkpoint maps (*.json from `lossmap embed`) found "
        "under the folder given on the command line."
        if has_root
        else "Start with `lossmap explore PATH` to open stores saved under PATH."
    )
    return html.Div(
        className="main",
        children=[
            html.Div(
                className="controls",
                children=[
                    html.H3("Store"),
                    html.Div(hint, style={"marginBottom": "6px"}),
                    dcc.Dropdown(id="store", options=[], value=None),
                    html.H3("Field"),
                    dcc.RadioItems(
                        id="field",
                        options=[],
                        value=None,
                        inline=True,
                        inputStyle={"marginRight": "3px"},
                    ),
                    html.Div(id="research-message", className="message"),
                ],
            ),
            html.Div(
                className="col col-landscape",
                children=[
                    html.Div(
                        className="panel",
                        children=[
                            dcc.Graph(
                                id="research-graph",
                                figure=placeholder_figure(NO_STORE[has_root]),
                                className="graph-landscape",
                                config={"displaylogo": False, "responsive": True},
                            )
                        ],
                    )
                ],
            ),
            html.Div(
                className="col col-side",
                children=[
                    html.Div(
                        className="panel meta",
                        children=[
                            html.B("About this store"),
                            html.Ul(id="research-meta"),
                        ],
                    )
                ],
            ),
        ],
    )


def build_layout(
    *,
    functions: tuple[str, ...],
    optimizers: tuple[str, ...],
    schedules: tuple[str, ...],
    has_root: bool,
    hyper: dict[str, dict[str, float]] | None = None,
) -> Any:
    """The whole page; ``hyper`` gives each optimizer's settings and defaults."""
    from dash import dcc, html

    return html.Div(
        [
            dcc.Location(id="url", refresh=False),
            html.Div(
                className="header",
                children=[
                    html.H1("lossmap explorer"),
                    html.Span(
                        "click or drag on the landscape to set the parameters",
                        id="header-hint",
                    ),
                    html.Div(
                        className="share",
                        children=[
                            dcc.Dropdown(
                                id="lesson",
                                options=[
                                    {"label": label, "value": key}
                                    for key, (label, _) in LESSONS.items()
                                ],
                                placeholder="start a lesson…",
                                clearable=True,
                                className="lesson",
                            ),
                            html.Span(
                                [
                                    dcc.Clipboard(
                                        id="copy-link",
                                        title="copy a link to exactly this view",
                                        className="copy",
                                    ),
                                    " copy link",
                                ],
                                className="copy-box",
                            ),
                        ],
                    ),
                ],
            ),
            dcc.Tabs(
                id="tabs",
                value="teaching",
                mobile_breakpoint=0,
                children=[
                    dcc.Tab(
                        label="Landscape",
                        value="teaching",
                        children=_teaching_tab(
                            functions, optimizers, schedules, hyper or {}
                        ),
                    ),
                    dcc.Tab(
                        label="Saved stores",
                        value="research",
                        children=_research_tab(has_root),
                    ),
                ],
            ),
            dcc.Store(id="point"),
            dcc.Store(id="runs"),
            dcc.Store(id="problem-spec"),
            dcc.Store(id="data-edit"),
            dcc.Store(id="pending"),
            dcc.Store(id="fit-click"),
            dcc.Store(id="animated"),
        ]
    )
