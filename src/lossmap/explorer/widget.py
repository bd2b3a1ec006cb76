"""A self-contained lesson page: one HTML file, no server, no network.

``build_widget(...)`` precomputes, for one model and data set, the landscape
of each chosen loss (a Plotly figure), θ* and one run of each chosen optimizer
per loss, and writes them into a single HTML file with plotly.js and the
explorer's formulas (``assets/lossmap.js``) inlined. In the page:

* a click on the landscape moves (w, b); the fit curve, the residuals and the
  readout are computed in the browser from the data and the model's formula;
* buttons switch between the precomputed losses;
* "replay" animates the optimizer paths of the current loss.

The file opens from ``file://`` and can be embedded in a course page
(``<iframe src="lesson.html">``). ``lossmap widget`` is the command line.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lossmap import toy
from lossmap.explorer import teaching
from lossmap.explorer.validate import (
    InputError,
    ProblemSettings,
    check_name,
    check_number,
    loss_names,
    run_settings,
)

__all__ = ["build_widget", "write_widget"]

_ASSETS = Path(__file__).resolve().parent / "assets"


def _figure_json(fig: Any) -> Any:
    import plotly.io as pio

    return json.loads(pio.to_json(fig, validate=False, remove_uids=False))


def build_widget(
    *,
    model: str = "line",
    data: str = "two-points",
    losses: Sequence[str] = ("mse", "mae", "huber"),
    optimizers: Sequence[str] = ("gd", "momentum", "adam"),
    steps: int = 100,
    grid: int = 101,
    delta: float = 0.5,
    start: tuple[float, float] | None = None,
    title: str | None = None,
) -> str:
    """The lesson page as one HTML string (see the module docstring).

    Parameters are checked like the explorer's controls; learning rates are
    the explorer's defaults for the data.
    """
    from lossmap.toy.models import MODELS

    model = check_name("model", model, tuple(MODELS))
    # the explorer's pairs: the logistic model on binary data, the others
    # on regression data
    task = "binary" if model == "logistic" else "regression"
    if data in toy.preset_names() and data not in toy.preset_names(task):
        raise InputError(
            f"the {model} model needs {task} data "
            f"({', '.join(toy.preset_names(task))}), got {data!r}"
        )
    data = check_name("data", data, toy.preset_names(task))
    losses = list(dict.fromkeys(losses))
    if not losses:
        raise InputError("choose at least one loss")
    for name in losses:
        check_name("loss", name, loss_names(task))
    steps = int(check_number("steps", steps, minimum=1, maximum=2000, integer=True))
    grid = int(check_number("grid", grid, minimum=11, maximum=301, integer=True))
    delta = check_number("delta", delta, minimum=0.0, maximum=100.0, strict_min=True)
    region = toy.dataset(data).region
    views: dict[str, Any] = {}
    point = None
    for name in losses:
        s = ProblemSettings(model, data, name, delta, 0.0, region, grid)
        if point is None:
            point = tuple(start) if start is not None else teaching.default_start(s)
        hyper = teaching.default_hyper(s)
        rs = run_settings(
            list(optimizers),
            {o: hyper[o] for o in optimizers if o in hyper},
            steps,
            "constant",
            available={n: tuple(h) for n, h in hyper.items()},
            schedules=("constant",),
        )
        runs = teaching.run_optimizers(s, rs, point)
        fig = teaching.landscape_view(s, current=point, start=point)
        fig.update_layout(dragmode=False, uirevision=None)
        _, note = teaching.minimum_for(s)
        views[name] = {
            "label": teaching.landscape_for(s).loss_fn.label,
            "figure": _figure_json(fig),
            "spec": teaching.problem_spec(s),
            "runs": [
                {
                    "label": r.label,
                    "params": teaching._jsonable(r.params),
                    "status": line,
                }
                for r, line in zip(
                    runs, teaching.status_lines(runs, teaching.best_value(s))
                )
            ],
            "note": note,
        }
    first = ProblemSettings(model, data, losses[0], delta, 0.0, region, grid)
    fit = _figure_json(teaching.fit_view(first, point))
    payload = {"views": views, "order": losses, "fit": fit, "point": list(point)}
    import plotly.offline

    plotly_js = plotly.offline.get_plotlyjs()
    formulas = (_ASSETS / "lossmap.js").read_text(encoding="utf-8")
    page_js = (_ASSETS / "widget.js").read_text(encoding="utf-8")
    heading = title or f"{teaching.landscape_for(first).model.formula} on {data}"
    return _PAGE.format(
        title=html.escape(heading),
        css=_CSS,
        plotly=plotly_js.replace("</script", "<\\/script"),
        formulas=formulas.replace("</script", "<\\/script"),
        data=json.dumps(payload, separators=(",", ":")).replace("</", "<\\/"),
        page=page_js.replace("</script", "<\\/script"),
    )


def write_widget(path: str | Path, **kw: Any) -> Path:
    """Write :func:`build_widget`'s page to ``path`` (``.html``); return it."""
    path = Path(path)
    if path.suffix.lower() not in (".html", ".htm"):
        raise ValueError(f"`out` must end in .html, got {path.name!r}")
    path.write_text(build_widget(**kw), encoding="utf-8")
    return path


_CSS = """
body { font-family: Inter, Helvetica, Arial, sans-serif; margin: 0; color: #1d1f23; }
h1 { font-size: 17px; margin: 8px 12px; }
.bar { display: flex; flex-wrap: wrap; gap: 6px; align-items: center; margin: 0 12px; }
.bar button { background: #e3e8f2; border: 0; border-radius: 6px; padding: 5px 10px;
              font-size: 13px; cursor: pointer; }
.bar button.on { background: #2a6fdb; color: white; }
.panels { display: flex; flex-wrap: wrap; gap: 8px; padding: 6px 8px; }
.panels > div { flex: 1 1 380px; min-width: 0; height: 440px; }
#readout, #status { font-family: "DejaVu Sans Mono", Menlo, monospace; font-size: 13px;
           margin: 2px 12px; white-space: pre-wrap; }
"""

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title><style>{css}</style>
<script>{plotly}</script>
<script>{formulas}</script>
</head><body>
<h1>{title}</h1>
<div class="bar" id="losses"></div>
<div class="bar"><button id="replay">▶ replay the optimizers</button>
<span>click the landscape to choose (w, b)</span></div>
<div id="readout"></div>
<div class="panels"><div id="landscape"></div><div id="fit"></div></div>
<div id="status"></div>
<script id="lesson-data" type="application/json">{data}</script>
<script>{page}</script>
</body></html>
"""
