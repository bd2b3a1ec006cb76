"""The research view's plain functions: listing, opening, describing stores."""

from __future__ import annotations

import numpy as np
import pytest

from lossmap import Surface
from lossmap.explorer import research
from lossmap.explorer.validate import InputError

pytest.importorskip("zarr")
pytest.importorskip("plotly")


def _plane(**meta):
    a = np.linspace(-1, 1, 21)
    b = np.linspace(-0.5, 1.5, 11)
    loss = 0.2 + np.add.outer(a**2, (b - 0.5) ** 2)
    acc = 1 - loss / loss.max()
    return Surface(
        axes={"alpha": a, "beta": b},
        fields={"loss": loss, "accuracy": acc},
        metadata=meta,
    )


@pytest.fixture
def root(tmp_path):
    from lossmap import io

    r = tmp_path / "stores"
    (r / "deep" / "er").mkdir(parents=True)
    io.save(_plane(), r / "b.zarr")
    io.save(_plane(), r / "deep" / "er" / "a.zarr")
    (r / "not-a-store.zarr").mkdir()
    io.save(_plane(), tmp_path / "outside.zarr")
    return r


def test_list_and_open_stores(root):
    # surface stores at any depth, relative and sorted; other folders left out
    assert research.list_stores(root) == ["b.zarr", "deep/er/a.zarr"]
    assert research.list_stores(root / "not-a-store.zarr") == []
    assert research.list_stores(None) == []
    assert research.list_stores(root / "b.zarr") == ["."]
    s = research.load_store(root, "deep/er/a.zarr")
    assert s.allclose(_plane())
    with pytest.raises(InputError, match=r"could not open .not-a-store\.zarr."):
        research.load_store(root, "not-a-store.zarr")
    with pytest.raises(InputError, match="outside the store folder"):
        research.load_store(root, "../outside.zarr")


def test_store_figure_plane_with_trajectory_and_line():
    coords = [[0.9, 1.2], [0.5, 0.9], [0.1, 0.55]]
    s = _plane(trajectory={"steps": [0, 5, 10], "coords": coords})
    traj = research.trajectory_of(s)
    np.testing.assert_array_equal(traj.params, coords)
    fig = research.store_figure(s, "loss")
    path = fig.data[-1]
    assert path.name == "training path"
    np.testing.assert_array_equal(np.column_stack([path.x, path.y]), coords)
    assert fig.data[4].x == (0.9,)  # the start of training
    acc = research.store_figure(s, "accuracy")
    np.testing.assert_allclose(acc.data[0].z, s.field("accuracy").T.astype(np.float32))
    assert acc.data[3].name == "highest accuracy on the grid"
    with pytest.raises(InputError, match="`field` must be one of"):
        research.store_figure(s, "nope")
    line = Surface(axes={"alpha": np.linspace(-1, 1, 5)}, fields={"loss": np.ones(5)})
    assert research.store_figure(line, "loss").data[0].type == "scatter"
    assert research.trajectory_of(line) is None
    assert research.trajectory_of(_plane(trajectory="garbage")) is None


def test_saved_views_name_directions_mark_models_and_label_log_ticks():
    dirs = [
        {"kind": "random", "seed": 0, "index": 0},
        {"kind": "random", "seed": 0, "index": 1},
    ]
    plane = _plane(directions=dirs)
    fig = research.store_figure(plane, "loss")
    assert fig.layout.xaxis.title.text == "direction 1: random, seed 0"
    assert fig.layout.yaxis.title.text == "direction 2: random, seed 0"
    star = next(t for t in fig.data if t.uid == "minimum")
    assert star.cliponaxis is False  # drawn whole on the grid's edge
    a = np.linspace(-0.5, 1.5, 21)
    line = Surface(
        axes={"alpha": a},
        fields={"loss": 0.02 + (a - 1.0) ** 2 * 40},
        metadata={"directions": [{"kind": "interpolation"}]},
    )
    fig = research.store_figure(line, "loss")
    assert fig.layout.title.text == "loss along the line"
    marks = next(t for t in fig.data if t.uid == "marks")
    assert list(marks.x) == [0.0, 1.0]
    assert list(marks.text) == ["model A (α = 0)", "model B (α = 1)"]
    np.testing.assert_allclose(marks.y, [40.02, 0.02])
    # every log tick says its value: 0.2 and 2 cannot be confused
    assert fig.layout.yaxis.type == "log"
    texts = list(fig.layout.yaxis.ticktext)
    assert len(texts) == len(set(texts)) >= 3
    for v, t in zip(fig.layout.yaxis.tickvals, texts):
        assert float(t) == pytest.approx(v)


def _embedding_record(n_per_run=4):
    rng = np.random.default_rng(0)
    n = 2 * n_per_run
    return {
        "kind": "nn.embedding",
        "coords": rng.normal(size=(n, 2)).tolist(),
        "run": [0] * n_per_run + [1] * n_per_run,
        "step": list(range(n_per_run)) * 2,
        "runs": ["seed0", "seed1"],
        "loss": np.linspace(2.0, 0.1, n).tolist(),
        "metrics": {},
        "meta": {"method": "pca", "explained_variance_ratio": [0.6, 0.3]},
    }


def test_checkpoint_maps_are_listed_opened_and_drawn(root, tmp_path, monkeypatch):
    import json

    rec = _embedding_record()
    (root / "maps").mkdir()
    (root / "maps" / "map.json").write_text(json.dumps(rec))
    (root / "other.json").write_text(json.dumps({"kind": "something else"}))
    (root / "broken.json").write_text("{not json")
    (root / "b.zarr" / "inside.json").write_text(json.dumps(rec))  # inside a store
    (tmp_path / "outside.json").write_text(json.dumps(rec))
    assert research.list_stores(root) == ["b.zarr", "deep/er/a.zarr", "maps/map.json"]
    assert research.list_stores(root / "maps" / "map.json") == ["."]
    got = research.load_embedding(root, "maps/map.json")
    assert got["coords"] == rec["coords"]
    fig, about = research.embedding_view(got)
    points = next(t for t in fig.data if t.name == "checkpoints")
    np.testing.assert_allclose(np.column_stack([points.x, points.y]), rec["coords"])
    assert fig.layout.title.text == "PCA of 8 checkpoints"
    assert about[0].startswith("A map of 8 checkpoints from 2 run(s) (seed0, seed1)")
    for bad, words in (
        ("other.json", "not a checkpoint map"),
        ("broken.json", "not a checkpoint map"),
        ("../outside.json", "outside the store folder"),
        ("nope.json", "does not exist"),
    ):
        with pytest.raises(InputError, match=words):
            research.load_embedding(root, bad)
    # the size cap: neither listed nor read
    monkeypatch.setattr(research, "MAX_JSON_BYTES", 100)
    research._read_embedding.cache_clear()
    assert "maps/map.json" not in research.list_stores(root)
    with pytest.raises(InputError, match="larger than"):
        research.load_embedding(root, "maps/map.json")


def test_research_callbacks_serve_a_checkpoint_map(tmp_path):
    import json

    pytest.importorskip("dash")
    from lossmap.explorer import create_app

    rec = _embedding_record()
    (tmp_path / "map.json").write_text(json.dumps(rec))
    app = create_app(store_root=tmp_path)
    client = app.server.test_client()

    def post(outputs, inputs, changed):
        body = {
            "output": "..{}..".format("...".join(f"{o}.{p}" for o, p in outputs)),
            "outputs": [{"id": o, "property": p} for o, p in outputs],
            "inputs": [{"id": i, "property": p, "value": v} for i, p, v in inputs],
            "changedPropIds": [changed],
        }
        r = client.post("/_dash-update-component", json=body)
        assert r.status_code == 200, r.data
        return r.get_json()["response"]

    got = post(
        [("store", "options"), ("store", "value")],
        [("tabs", "value", "research")],
        "tabs.value",
    )
    assert got["store"]["value"] == "map.json"
    got = post(
        [
            ("field", "options"),
            ("field", "value"),
            ("research-meta", "children"),
            ("research-message", "children"),
        ],
        [("store", "value", "map.json")],
        "store.value",
    )
    about = [li["props"]["children"] for li in got["research-meta"]["children"]]
    assert about[0].startswith("A map of 8 checkpoints")
    assert got["research-message"]["children"] == ""
    # the figure's callback shares an output (allow_duplicate): its key in
    # the callback map carries a suffix, so take the outputs from there
    key = next(k for k in app.callback_map if k.startswith("..research-graph.figure"))
    got = post(
        [tuple(o.split(".", 1)) for o in key.strip(".").split("...")],
        [("field", "value", "loss"), ("store", "value", "map.json")],
        "store.value",
    )
    fig = got["research-graph"]["figure"]
    assert fig["layout"]["title"]["text"] == "PCA of 8 checkpoints"
    assert any(t.get("name") == "checkpoints" for t in fig["data"])


@pytest.mark.parametrize("with_root", [False, True])
def test_unopened_store_graph_says_what_to_do(tmp_path, with_root):
    """Before a store is open the graph showed Plotly's default axes (0 to 6
    by -1 to 4) as if they were data; now it says what to do, no axes."""
    from dash import dcc

    from lossmap.explorer import create_app

    app = create_app(store_root=tmp_path if with_root else None)

    def find(node):
        if isinstance(node, dcc.Graph) and node.id == "research-graph":
            return node
        children = getattr(node, "children", None)
        for c in children if isinstance(children, list | tuple) else [children]:
            if c is not None and not isinstance(c, str | int | float):
                got = find(c)
                if got is not None:
                    return got
        return None

    layout = find(app.layout).figure["layout"]
    assert layout["xaxis"]["visible"] is False
    assert layout["yaxis"]["visible"] is False
    text = layout["annotations"][0]["text"]
    assert ("choose a store" in text) == with_root
    assert ("lossmap explore PATH" in text) != with_root
