"""The explorer's page: controls, graphs and stores (no behaviour here).

Component ids are part of the app's interface (the callbacks and the browser
tests use them): ``landscape``, ``fit``, ``readout``, ``message``, ``loss``,
``model``, ``preset``, ``delta``, ``l2``, ``run``, ``run-status``,
``research-graph``… Every option list comes from the library's registries.
"""

from __future__ import annotations

from typing import Any

from lossmap import toy
from lossmap.explorer.validate import DEFAULT_GRID_STEPS

__all__ = ["LOSS_LABELS", "MODEL_LABELS", "OPTIMIZER_LABELS", "build_layout"]

MODEL_LABELS = {"line": "line w·x + b", "tanh": "tanh neuron", "logistic": "logistic"}
LOSS_LABELS = {
    "mse": "MSE",
    "mae": "MAE",
    "huber": "Huber",
    "log_cosh": "log-cosh",
    "bce": "BCE",
}
OPTIMIZER_LABELS = {
    "gd": "GD",
    "sgd": "SGD",
    "momentum": "momentum",
    "nesterov": "Nesterov",
    "adagrad": "AdaGrad",
    "rmsprop": "RMSprop",
    "adam": "Adam",
    "adamw": "AdamW",
}

CSS = """
body { font-family: Inter, Helvetica, Arial, sans-serif; margin: 0;
       background: #f6f7f9; color: #1d1f23; }
.header { padding: 10px 18px; background: #1d2433; color: white; }
.header h1 { font-size: 19px; margin: 0; display: inline-block; }
.header span { margin-left: 14px; color: #b8c2d6; font-size: 13px; }
.main { display: flex; gap: 12px; padding: 10px 12px; align-items: flex-start; }
.controls { width: 250px; flex: none; background: white; border-radius: 8px;
            padding: 10px 12px; box-shadow: 0 1px 3px rgba(0,0,0,.12);
            font-size: 13px; }
.controls h3 { font-size: 13px; margin: 12px 0 4px; text-transform: uppercase;
               letter-spacing: .04em; color: #4a5568; }
.controls label { margin-right: 8px; }
.controls input[type=number] { width: 68px; }
.panel { background: white; border-radius: 8px; padding: 6px;
         box-shadow: 0 1px 3px rgba(0,0,0,.12); }
.col { display: flex; flex-direction: column; gap: 10px; min-width: 0; }
.readout { font-family: "DejaVu Sans Mono", Menlo, monospace; font-size: 15px;
           padding: 6px 10px; background: #eef2f8; border-radius: 6px;
           white-space: pre; }
.message { color: #b00020; font-size: 14px; padding: 2px 10px; min-height: 18px; }
.status { font-size: 14px; padding: 4px 10px; white-space: pre-line; }
.meta { font-size: 14px; padding: 6px 12px; }
.meta li { margin: 3px 0; }
.row { display: flex; gap: 6px; align-items: center; margin: 3px 0; }
button { background: #2a6fdb; color: white; border: 0; border-radius: 6px;
         padding: 6px 14px; font-size: 14px; cursor: pointer; }
"""


def _radio(id_: str, options: dict[str, str], value: str) -> Any:
    from dash import dcc

    return dcc.RadioItems(
        id=id_,
        options=[{"label": v, "value": k} for k, v in options.items()],
        value=value,
        inline=True,
        inputStyle={"marginRight": "3px"},
    )


def _number(id_: str, value: Any, **kw: Any) -> Any:
    from dash import dcc

    return dcc.Input(id=id_, type="number", value=value, debounce=True, **kw)


def _teaching_controls(
    functions: tuple[str, ...], optimizers: tuple[str, ...], schedules: tuple[str, ...]
) -> Any:
    from dash import dcc, html

    presets = toy.preset_names("regression")
    region = toy.dataset(presets[0]).region
    modes = {"problem": "model + data"}
    if functions:
        modes["function"] = "test surface"
    opt_default = [o for o in ("gd", "momentum", "adam") if o in optimizers]
    return html.Div(
        className="controls",
        children=[
            html.H3("What to explore"),
            _radio("mode", modes, "problem"),
            html.Div(
                id="problem-controls",
                children=[
                    html.H3("Model"),
                    _radio("model", MODEL_LABELS, "line"),
                    html.H3("Data"),
                    dcc.Dropdown(
                        id="preset",
                        options=list(presets),
                        value=presets[0],
                        clearable=False,
                    ),
                    html.H3("Loss"),
                    _radio(
                        "loss",
                        {
                            k: LOSS_LABELS[k]
                            for k in ("mse", "mae", "huber", "log_cosh")
                        },
                        "mse",
                    ),
                    html.Div(
                        id="delta-box",
                        style={"display": "none"},
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
                        children=["L2 strength", _number("l2", 0.0, step=0.01)],
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
            html.H3("Grid range"),
            html.Div(
                className="row",
                children=[
                    html.Span("w", id="axis0-name", style={"width": "14px"}),
                    _number("range0-min", region[0][0]),
                    _number("range0-max", region[0][1]),
                ],
            ),
            html.Div(
                className="row",
                children=[
                    html.Span("b", id="axis1-name", style={"width": "14px"}),
                    _number("range1-min", region[1][0]),
                    _number("range1-max", region[1][1]),
                ],
            ),
            html.Div(
                className="row",
                children=[
                    "grid",
                    _number("grid-steps", DEFAULT_GRID_STEPS),
                    _radio("view", {"2d": "2-D", "3d": "3-D"}, "2d"),
                ],
            ),
            html.H3("Optimizers"),
            dcc.Checklist(
                id="optimizers",
                options=[
                    {"label": OPTIMIZER_LABELS.get(o, o), "value": o}
                    for o in optimizers
                ],
                value=opt_default,
                inline=True,
                inputStyle={"marginRight": "3px"},
            ),
            html.Div(
                className="row",
                children=["learning rate", _number("lr", 0.1, step=0.01)],
            ),
            html.Div(
                className="row",
                children=["momentum", _number("momentum", 0.9, step=0.05)],
            ),
            html.Div(
                className="row",
                children=["steps", _number("opt-steps", 100)],
            ),
            html.Div(
                className="row",
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
            html.Button(
                "run from the current point",
                id="run",
                n_clicks=0,
                style={"marginTop": "8px", "width": "100%"},
            ),
            html.Div(id="run-message", className="message"),
        ],
    )


def _teaching_tab(
    functions: tuple[str, ...], optimizers: tuple[str, ...], schedules: tuple[str, ...]
) -> Any:
    from dash import dcc, html

    return html.Div(
        className="main",
        children=[
            _teaching_controls(functions, optimizers, schedules),
            html.Div(
                className="col",
                style={"flex": "1.25"},
                children=[
                    html.Div(
                        className="panel",
                        children=[
                            dcc.Graph(
                                id="landscape",
                                style={"height": "600px"},
                                config={"displaylogo": False, "scrollZoom": False},
                            ),
                        ],
                    ),
                    html.Div(id="message", className="message"),
                ],
            ),
            html.Div(
                className="col",
                style={"flex": "1"},
                children=[
                    html.Div(id="readout", className="readout"),
                    html.Div(
                        id="fit-panel",
                        className="panel",
                        children=[
                            dcc.Graph(
                                id="fit",
                                style={"height": "380px"},
                                config={"displaylogo": False},
                            ),
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
                                style={"height": "260px"},
                                config={"displaylogo": False},
                            ),
                            html.Div(id="run-status", className="status"),
                        ],
                    ),
                ],
            ),
        ],
    )


def _research_tab(has_root: bool) -> Any:
    from dash import dcc, html

    hint = (
        "Stores (*.zarr) found under the folder given on the command line."
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
                className="col",
                style={"flex": "1.4"},
                children=[
                    html.Div(
                        className="panel",
                        children=[
                            dcc.Graph(
                                id="research-graph",
                                style={"height": "620px"},
                                config={"displaylogo": False},
                            )
                        ],
                    )
                ],
            ),
            html.Div(
                className="col",
                style={"flex": "0.8"},
                children=[
                    html.Div(
                        className="panel meta",
                        children=[
                            html.B("About this surface"),
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
) -> Any:
    """The whole page."""
    from dash import dcc, html

    return html.Div(
        [
            html.Div(
                className="header",
                children=[
                    html.H1("lossmap explorer"),
                    html.Span("click the landscape to set the parameters"),
                ],
            ),
            dcc.Tabs(
                id="tabs",
                value="teaching",
                children=[
                    dcc.Tab(
                        label="Landscape",
                        value="teaching",
                        children=_teaching_tab(functions, optimizers, schedules),
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
            dcc.Store(id="animated"),
        ]
    )
