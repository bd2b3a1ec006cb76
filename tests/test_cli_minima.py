"""`lossmap connect` and `lossmap embed` on a model file written by the test."""

from __future__ import annotations

import json
import sys
import textwrap

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from lossmap import io  # noqa: E402
from lossmap import nn as lnn  # noqa: E402
from lossmap.cli import main  # noqa: E402

MODEL_FILE = textwrap.dedent(
    """
    import os
    import torch

    def make_model():
        torch.manual_seed(0)
        return torch.nn.Sequential(
            torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)
        )

    def make_bn():
        torch.manual_seed(0)
        return torch.nn.Sequential(
            torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8), torch.nn.Tanh(),
            torch.nn.Linear(8, 3),
        )

    def batch():
        g = torch.Generator().manual_seed(1)
        x = torch.randn(96, 4, generator=g)
        y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
        return x, y

    CALLS = [0]

    def ce_stop(out, y):
        # Ctrl-C during curve training (the only place the loss needs grads)
        if os.environ.get("H14_STOP") and torch.is_grad_enabled():
            CALLS[0] += 1
            if CALLS[0] > 5:
                raise KeyboardInterrupt
        return torch.nn.functional.cross_entropy(out, y)
    """
)


def _train(ns, seed, folder=None, steps=40):
    torch.manual_seed(seed)
    model = ns["make_model"]()
    torch.manual_seed(seed)
    for p in model.parameters():  # each seed its own start
        torch.nn.init.normal_(p, std=0.5)
    x, y = ns["batch"]()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    for step in range(steps):
        if folder is not None and step % 8 == 0:
            torch.save(model.state_dict(), folder / f"step{step}.pt")
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return model


@pytest.fixture
def work(tmp_path, monkeypatch):
    (tmp_path / "nets.py").write_text(MODEL_FILE)
    monkeypatch.chdir(tmp_path)
    sys.modules.pop("nets", None)
    ns: dict = {}
    exec(MODEL_FILE, ns)
    for seed in (0, 1):
        (tmp_path / f"run{seed}").mkdir()
        model = _train(ns, seed, tmp_path / f"run{seed}")
        torch.save(model.state_dict(), tmp_path / f"final{seed}.pt")
    return tmp_path, ns


def test_connect_writes_paths_curve_and_figures(work, capsys):
    tmp, ns = work
    args = [
        "connect", "--model", "nets.py:make_model", "--data", "nets.py:batch",
        "--weights", "final0.pt", "--weights", "final1.pt", "--metric", "accuracy",
        "--out", "conn", "--epochs", "3", "--batch-size", "32", "--steps", "7",
        "--plane-steps", "5",
    ]  # fmt: skip
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "linear " in text
    assert "linear, aligned" in text
    assert "bezier curve" in text
    linear = io.load(tmp / "conn" / "linear.zarr")
    # the reference: the library called directly on the same two models
    a, b = ns["make_model"](), ns["make_model"]()
    a.load_state_dict(torch.load(tmp / "final0.pt"))
    b.load_state_dict(torch.load(tmp / "final1.pt"))
    ref = lnn.linear_path(a, b, torch.nn.functional.cross_entropy, ns["batch"](),
                          steps=7)  # fmt: skip
    np.testing.assert_allclose(linear.loss, ref.loss, rtol=1e-6)
    assert linear.metadata["barrier"] == pytest.approx(ref.metadata["barrier"])
    assert "_command" in linear.metadata
    for name in ("barriers.png", "curve_plane.png", "curve_plane_e3.zarr", "curve"):
        assert (tmp / "conn" / name).exists(), name
    along = io.load(tmp / "conn" / "curve_path_e3.zarr")
    assert set(along.field_names) == {"loss", "accuracy"}
    curve = lnn.Curve.load(tmp / "conn" / "curve")
    assert curve.meta["epochs_done"] == 3
    # rerun with more epochs: training resumes from epoch 3
    args[args.index("--epochs") + 1] = "4"
    assert main(args) == 0
    assert lnn.Curve.load(tmp / "conn" / "curve").meta["epochs_done"] == 4


def test_connect_needs_two_weights(work, capsys):
    code = main(
        ["connect", "--model", "nets.py:make_model", "--data", "nets.py:batch",
         "--weights", "final0.pt"]
    )  # fmt: skip
    assert code == 2
    assert "--weights" in capsys.readouterr().err


def test_embed_checkpoint_folders(work, capsys):
    tmp, _ = work
    code = main(
        ["embed", "--model", "nets.py:make_model", "--data", "nets.py:batch",
         "--checkpoints", "run0", "--checkpoints", "run1", "--out", "map.png"]
    )  # fmt: skip
    assert code == 0
    assert (tmp / "map.png").exists()
    record = json.loads((tmp / "map.json").read_text())
    assert record["runs"] == ["run0", "run1"]
    assert record["step"][:5] == [0, 8, 16, 24, 32]
    assert len(record["coords"]) == 10
    # equals the library on the same state dicts
    states = {
        r: [torch.load(tmp / r / f"step{s}.pt") for s in range(0, 40, 8)]
        for r in ("run0", "run1")
    }
    ref = lnn.embed(states)
    np.testing.assert_allclose(record["coords"], ref.coords, rtol=1e-6, atol=1e-9)
    assert len(record["loss"]) == 10
    code = main(
        ["embed", "--model", "nets.py:make_model", "--out", "map.txt",
         "--checkpoints", "run0"]
    )  # fmt: skip
    assert code == 2
    assert "--out" in capsys.readouterr().err


def test_embed_bn_eval_uses_each_checkpoints_own_statistics(work):
    tmp, ns = work
    model, (x, y) = ns["make_bn"](), ns["batch"]()
    opt = torch.optim.SGD(model.parameters(), lr=0.3)
    (tmp / "bn").mkdir()
    for step in range(30):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x + 2.0), y).backward()
        opt.step()
        if step % 10 == 9:
            torch.save(model.state_dict(), tmp / "bn" / f"step{step}.pt")
    code = main(
        ["embed", "--model", "nets.py:make_bn", "--data", "nets.py:batch",
         "--checkpoints", "bn", "--bn", "eval", "--out", "bn.png"]
    )  # fmt: skip
    assert code == 0
    want = []
    for step in (9, 19, 29):
        fresh = ns["make_bn"]()
        fresh.load_state_dict(torch.load(tmp / "bn" / f"step{step}.pt"))
        fresh.eval()
        with torch.no_grad():
            want.append(float(torch.nn.functional.cross_entropy(fresh(x), y)))
    record = json.loads((tmp / "bn.json").read_text())
    np.testing.assert_allclose(record["loss"], want, rtol=1e-5)


def test_embed_html_page(work):
    tmp, _ = work
    code = main(
        ["embed", "--model", "nets.py:make_model", "--data", "nets.py:batch",
         "--checkpoints", "run0", "--method", "tsne", "--perplexity", "2",
         "--out", "map.html"]
    )  # fmt: skip
    assert code == 0
    page = (tmp / "map.html").read_text()
    assert "plotly" in page
    assert "not metric" in page
    record = json.loads((tmp / "map.json").read_text())
    assert record["kind"] == "nn.embedding"
    assert record["meta"]["perplexity"] == 2.0


def test_ctrl_c_while_training_says_what_is_saved(work, capsys, monkeypatch):
    tmp, _ = work
    args = [
        "connect", "--model", "nets.py:make_model", "--data", "nets.py:batch",
        "--loss", "nets.py:ce_stop", "--weights", "final0.pt", "--weights",
        "final1.pt", "--out", "conn", "--epochs", "3", "--batch-size", "32",
        "--steps", "3", "--no-align",
    ]  # fmt: skip
    monkeypatch.setenv("H14_STOP", "1")
    assert main(args) == 130
    assert "1 epoch(s) of the curve are saved" in capsys.readouterr().err
    monkeypatch.delenv("H14_STOP")
    assert main(args) == 0
    assert lnn.Curve.load(tmp / "conn" / "curve").meta["epochs_done"] == 3


def test_embed_a_recorder_store_beside_a_checkpoint_folder(work):
    tmp, ns = work
    model = ns["make_model"]()
    x, y = ns["batch"]()
    rec = lnn.Recorder(model, every=2, store=tmp / "traj.zarr")
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    for step in range(8):
        rec(step)
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    code = main(
        ["embed", "--model", "nets.py:make_model", "--data", "nets.py:batch",
         "--trajectory", "traj.zarr", "--checkpoints", "run0", "--metric",
         "accuracy", "--out", "both.png"]
    )  # fmt: skip
    assert code == 0
    record = json.loads((tmp / "both.json").read_text())
    assert record["runs"] == ["traj.zarr", "run0"]
    assert record["step"] == [0, 2, 4, 6, 0, 8, 16, 24, 32]
    assert len(record["metrics"]["accuracy"]) == 9


def test_connect_a_curve_to_the_aligned_model(work, capsys):
    tmp, _ = work
    base = [
        "connect", "--model", "nets.py:make_model", "--data", "nets.py:batch",
        "--weights", "final0.pt", "--weights", "final1.pt", "--out", "conn",
        "--epochs", "1", "--batch-size", "48", "--steps", "3",
    ]  # fmt: skip
    assert main([*base, "--curve-to", "aligned"]) == 0
    assert "bezier curve to aligned B" in capsys.readouterr().out
    assert lnn.Curve.load(tmp / "conn" / "curve_aligned").meta["epochs_done"] == 1
    along = io.load(tmp / "conn" / "curve_aligned_path_e1.zarr")
    aligned = io.load(tmp / "conn" / "linear_aligned.zarr")
    # the curve ends where the aligned line ends
    assert along.loss[-1] == pytest.approx(aligned.loss[-1], rel=1e-5)
    assert main([*base, "--curve-to", "aligned", "--no-align"]) == 2
    assert "--align" in capsys.readouterr().err
