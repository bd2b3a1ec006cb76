"""`lossmap plane/line/pca/hessian/run` on a model file written by the test."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from lossmap import io  # noqa: E402
from lossmap import nn as lnn  # noqa: E402
from lossmap.cli import main  # noqa: E402

SRC = Path(__file__).resolve().parents[1] / "src"

MODEL_FILE = textwrap.dedent(
    """
    import os
    import torch

    def make_model():
        torch.manual_seed(0)
        return torch.nn.Sequential(
            torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)
        )

    def batch():
        g = torch.Generator().manual_seed(1)
        x = torch.randn(64, 4, generator=g)
        y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
        return x, y

    def make_bn():
        torch.manual_seed(0)
        return torch.nn.Sequential(
            torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8), torch.nn.Tanh(),
            torch.nn.Linear(8, 3),
        )

    class WithLoss(torch.nn.Module):
        # returns its own loss when the batch has labels (as HuggingFace)

        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.body = torch.nn.Linear(4, 3)

        def forward(self, x, labels=None):
            logits = self.body(x)
            out = {"logits": logits}
            if labels is not None:
                out["loss"] = torch.nn.functional.cross_entropy(logits, labels)
            return out

    def labelled():
        x, y = batch()
        return {"x": x, "labels": y}

    class ByName(torch.nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.lin = torch.nn.Linear(4, 3)

        def forward(self, features):
            return self.lin(features)

    def named():
        x, y = batch()
        return {"features": x, "y": y}

    def run_features(model, b):
        return model(b["features"])

    def words():
        return "not a batch"

    def not_a_model():
        return 3

    CALLS = [0]

    def ce_interrupted(out, y):
        CALLS[0] += 1
        if os.environ.get("H9_INTERRUPT") and CALLS[0] > 12:  # after the probe
            raise KeyboardInterrupt
        return torch.nn.functional.cross_entropy(out, y)
    """
)


class Boom:
    """Unpickling this would create a file: proof the loader never unpickles."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


@pytest.fixture
def work(tmp_path, monkeypatch):
    (tmp_path / "nets.py").write_text(MODEL_FILE)
    monkeypatch.chdir(tmp_path)
    sys.modules.pop("nets", None)
    ns: dict = {}
    exec(MODEL_FILE, ns)
    model, (x, y) = ns["make_model"](), ns["batch"]()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    (tmp_path / "ckpts").mkdir()
    for step in range(40):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        if step % 8 == 0:
            torch.save(model.state_dict(), tmp_path / "ckpts" / f"step{step}.pt")
    torch.save(model.state_dict(), tmp_path / "final.pt")
    torch.save({"epoch": 3, "model": model.state_dict()}, tmp_path / "nested.pt")
    yield tmp_path
    sys.modules.pop("nets", None)


BASE = ["--model", "nets.py:make_model", "--data", "nets.py:batch"]


def _reference(make: str, weights: Path, params: dict) -> float:
    """The loss by a plain forward pass of a fresh model (no lossmap engine)."""
    ns: dict = {}
    exec(MODEL_FILE, ns)
    model = ns[make]()
    model.load_state_dict(torch.load(weights, weights_only=True))
    x, y = ns["batch"]()
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(params[name])
        return float(torch.nn.functional.cross_entropy(model(x), y))


def test_plane_matches_a_plain_forward_pass(work, capsys):
    argv = ["plane", *BASE, "--weights", "final.pt", "--metric", "accuracy"]
    argv += ["--steps", "5", "--span", "0.5", "--seed", "3", "--store", "p.zarr"]
    assert main(argv) == 0
    s = io.load(work / "p.zarr")
    assert s.shape == (5, 5)
    assert set(s.field_names) == {"loss", "accuracy"}
    ns: dict = {}
    exec(MODEL_FILE, ns)
    model = ns["make_model"]()
    model.load_state_dict(torch.load(work / "final.pt", weights_only=True))
    d1, d2 = lnn.random_plane(model, seed=3)
    w = {n: p.detach().clone() for n, p in model.named_parameters()}
    for i, j in [(0, 0), (2, 2), (4, 1)]:
        a, b = s.coords(0)[i], s.coords(1)[j]
        params = {n: w[n] + a * d1.tensors[n] + b * d2.tensors[n] for n in w}
        ref = _reference("make_model", work / "final.pt", params)
        assert s.loss[i, j] == pytest.approx(ref, rel=1e-5)
    assert "wrote p.zarr" in capsys.readouterr().out


def test_info_prints_the_command_and_it_recomputes_the_surface(work, capsys):
    argv = [
        "plane",
        *BASE,
        "--weights",
        "final.pt",
        "--steps",
        "4",
        "--store",
        "a.zarr",
    ]
    assert main(argv) == 0
    capsys.readouterr()
    assert main(["info", "a.zarr"]) == 0
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if ln.startswith("Recompute with: "))
    command = shlex.split(line.removeprefix("Recompute with: "))
    assert command[:2] == ["lossmap", "plane"]
    store = command.index("--store")
    command[store + 1] = "b.zarr"
    assert main(command[1:]) == 0
    np.testing.assert_array_equal(io.load("a.zarr").loss, io.load("b.zarr").loss)


def test_run_experiment_file_records_its_content(work, capsys):
    toml = textwrap.dedent(
        """
        command = "plane"
        model = "nets.py:make_model"
        weights = "nested.pt"
        weights-key = "model"
        data = "nets.py:batch"
        loss = "cross_entropy"
        steps = 4
        span = [-0.5, 0.5]
        store = "exp.zarr"
        """
    )
    (work / "exp.toml").write_text(toml)
    assert main(["run", "exp.toml"]) == 0
    s = io.load(work / "exp.zarr")
    assert s.metadata["_experiment"] == toml
    assert s.coords(0)[0] == -0.5
    direct = ["plane", *BASE, "--weights", "final.pt", "--steps", "4"]
    assert main([*direct, "--span", "-0.5,0.5", "--store", "d.zarr"]) == 0
    np.testing.assert_array_equal(io.load(work / "d.zarr").loss, s.loss)
    capsys.readouterr()
    assert main(["info", "exp.zarr"]) == 0
    out = capsys.readouterr().out
    assert "lossmap run" in out
    assert 'weights-key = "model"' in out


def test_line_between_two_checkpoints_ends_at_each(work):
    argv = ["line", *BASE, "--weights", "ckpts/step0.pt", "--weights", "final.pt"]
    assert main([*argv, "--steps", "5", "--span", "0,1", "--store", "l.zarr"]) == 0
    s = io.load(work / "l.zarr")
    ns: dict = {}
    exec(MODEL_FILE, ns)
    for k, path in [(0, "ckpts/step0.pt"), (-1, "final.pt")]:
        state = torch.load(work / path, weights_only=True)
        ref = _reference("make_model", work / "final.pt", state)
        assert s.loss[k] == pytest.approx(ref, rel=1e-5)


def test_pca_of_a_checkpoint_folder_stores_the_projected_path(work, capsys):
    argv = ["pca", *BASE, "--checkpoints", "ckpts", "--steps", "7", "--store", "q.zarr"]
    assert main(argv) == 0
    s = io.load(work / "q.zarr")
    traj = s.metadata["trajectory"]
    assert len(traj["coords"]) == 5
    assert traj["steps"] == [0, 8, 16, 24, 32]
    # the last checkpoint is the centre: its coordinates are 0, its true loss
    # is the loss of those weights
    assert traj["coords"][-1] == pytest.approx([0, 0], abs=1e-6)
    last = torch.load(work / "ckpts" / "step32.pt", weights_only=True)
    ref = _reference("make_model", work / "final.pt", last)
    assert traj["true_loss"][-1] == pytest.approx(ref, rel=1e-5)
    # the automatic span covers the whole path
    coords = np.array(traj["coords"])
    for k in range(2):
        assert (
            s.coords(k)[0] < coords[:, k].min() <= coords[:, k].max() < s.coords(k)[-1]
        )
    assert "explains" in capsys.readouterr().out


def test_hessian_top_eigenvalue_matches_the_dense_hessian(work, capsys):
    argv = ["hessian", *BASE, "--weights", "final.pt", "--top", "2", "--probes", "4"]
    assert main([*argv, "--params", "2.*", "--out", "h.json"]) == 0
    result = json.loads((work / "h.json").read_text())
    assert result["params"] == ["2.weight", "2.bias"]
    ns: dict = {}
    exec(MODEL_FILE, ns)
    model = ns["make_model"]()
    model.load_state_dict(torch.load(work / "final.pt", weights_only=True))
    x, y = ns["batch"]()
    w0, b0 = model[2].weight.detach(), model[2].bias.detach()
    hidden = model[1](model[0](x)).detach().double()

    def f(flat):
        w, b = flat[:24].reshape(3, 8), flat[24:]
        return torch.nn.functional.cross_entropy(hidden @ w.T + b, y)

    dense = torch.func.hessian(f)(torch.cat([w0.reshape(-1), b0]).double())
    top = np.sort(np.linalg.eigvalsh(dense.numpy()))[::-1][:2]
    np.testing.assert_allclose(result["eigenvalues"], top, rtol=1e-4)
    assert "top eigenvalues" in capsys.readouterr().out


def _no_store(work: Path) -> None:
    assert not list(work.glob("*.zarr")), "a store was written despite the error"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            ["--model", "nets.py:nope"],
            "`--model` must name a callable in 'nets.py', got 'nope'",
        ),
        (
            ["--model", "nets.py:not_a_model"],
            "`--model` nets.py:not_a_model must return a torch.nn.Module, got int",
        ),
        (["--model", "nets"], "`--model` must be MODULE:NAME or FILE.py:NAME"),
        (
            ["--data", "nets.py:words"],
            "`--data` must be a tensor, an (inputs, targets) pair, a tuple or list "
            "of tensors, a mapping of names to tensors",
        ),
        (
            ["--weights", "missing.pt"],
            "`--weights` must be a checkpoint file, got missing",
        ),
        (
            ["--weights", "nested.pt", "--weights-key", "ema"],
            "`--weights-key` must name an entry of nested.pt, got 'ema'",
        ),
        (["--loss", "no_such_loss"], "`--loss` must be one of"),
        (
            ["--metric", "f1"],
            "`--metric` must be one of ['accuracy'] or MODULE:FUNCTION, got 'f1'",
        ),
        (
            ["--span", "abc"],
            "`--span` must be a positive number, LO,HI with LO < HI, or auto, "
            "got 'abc'",
        ),
        (
            ["--params", "9.*"],
            "`--params` entry '9.*' matches no parameter of the model",
        ),
    ],
)
def test_bad_input_is_one_line_exit_2_nothing_written(work, capsys, extra, message):
    argv = ["plane", *BASE, "--steps", "3", "--store", "x.zarr", *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1
    _no_store(work)


def test_checkpoint_keys_that_do_not_match_are_listed(work, capsys):
    state = torch.load(work / "final.pt", weights_only=True)
    state["extra.weight"] = state.pop("0.weight")
    torch.save(state, work / "renamed.pt")
    argv = ["plane", *BASE, "--weights", "renamed.pt", "--store", "x.zarr"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "missing keys [0.weight], unexpected keys [extra.weight]" in err
    _no_store(work)


def test_checkpoint_with_nan_weights_is_named_as_the_weights_file(work, capsys):
    state = torch.load(work / "final.pt", weights_only=True)
    state["2.weight"][0, 0] = float("nan")
    torch.save(state, work / "diverged.pt")
    argv = ["plane", *BASE, "--weights", "diverged.pt", "--store", "x.zarr"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "`--weights` diverged.pt must hold finite values" in err
    assert "1 in '2.weight'" in err
    _no_store(work)


def test_pickled_checkpoint_is_refused_and_never_unpickled(work, capsys):
    marker = work / "unpickled"
    torch.save({"0.weight": Boom(str(marker))}, work / "pickled.pt")
    argv = ["plane", *BASE, "--weights", "pickled.pt", "--store", "x.zarr"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "`--weights` must be a weights-only checkpoint, got pickled.pt" in err
    assert "torch.save(model.state_dict()" in err
    assert not marker.exists()
    _no_store(work)


def test_safetensors_weights_give_the_same_surface(work):
    from safetensors.torch import save_file

    save_file(torch.load(work / "final.pt", weights_only=True), work / "w.safetensors")
    common = ["plane", *BASE, "--steps", "3"]
    assert main([*common, "--weights", "final.pt", "--store", "a.zarr"]) == 0
    assert main([*common, "--weights", "w.safetensors", "--store", "b.zarr"]) == 0
    np.testing.assert_array_equal(io.load("a.zarr").loss, io.load("b.zarr").loss)


def test_ctrl_c_says_what_is_saved_and_rerun_resumes(work, capsys, monkeypatch):
    argv = ["plane", *BASE, "--loss", "nets.py:ce_interrupted", "--steps", "9"]
    argv += ["--store", "c.zarr"]
    monkeypatch.setenv("H9_INTERRUPT", "1")
    assert main(argv) == 130
    err = capsys.readouterr().err
    assert "of 81 points are saved in c.zarr; rerun the same command to resume" in err
    assert "Traceback" not in err
    monkeypatch.delenv("H9_INTERRUPT")
    assert main(argv) == 0
    assert np.isfinite(io.load(work / "c.zarr").loss).all()


def test_overwrite_starts_the_store_again(work, capsys):
    argv = ["plane", *BASE, "--steps", "3", "--store", "o.zarr"]
    assert main(argv) == 0
    assert main([*argv[:-4], "--steps", "4", "--store", "o.zarr"]) == 2
    assert main([*argv[:-4], "--steps", "4", "--store", "o.zarr", "--overwrite"]) == 0
    assert io.load(work / "o.zarr").shape == (4, 4)
    (work / "notastore").mkdir()
    (work / "notastore" / "keep.txt").write_text("mine")
    bad = [*argv[:-2], "--store", "notastore", "--overwrite"]
    assert main(bad) == 2
    assert (work / "notastore" / "keep.txt").read_text() == "mine"


def test_the_installed_command_exits_2_from_a_shell(work):
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "lossmap",
            "plane",
            "--model",
            "nets.py:missing",
            "--data",
            "nets.py:batch",
            "--store",
            "s.zarr",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=work,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: `--model` must name a callable")
    assert "Traceback" not in proc.stderr
    _no_store(work)


def test_params_moves_only_the_selected_parameters(work):
    argv = ["plane", *BASE, "--weights", "final.pt", "--params", "2", "--steps", "3"]
    assert main([*argv, "--store", "sel.zarr"]) == 0
    s = io.load(work / "sel.zarr")
    for d in s.metadata["directions"]:
        assert d["params"]["names"] == ["2.weight", "2.bias"]
    # the surface equals a plain forward pass moving only the last layer
    ns: dict = {}
    exec(MODEL_FILE, ns)
    model = ns["make_model"]()
    model.load_state_dict(torch.load(work / "final.pt", weights_only=True))
    d1, d2 = lnn.random_plane(model, seed=0, ignore=None, params="2")
    assert float(d1.tensors["0.weight"].abs().sum()) == 0.0
    w = {n: p.detach().clone() for n, p in model.named_parameters()}
    a, b = s.coords(0)[0], s.coords(1)[2]
    params = {n: w[n] + a * d1.tensors[n] + b * d2.tensors[n] for n in w}
    ref = _reference("make_model", work / "final.pt", params)
    assert s.loss[0, 2] == pytest.approx(ref, rel=1e-5)


@pytest.mark.slow
def test_local_dask_executor_gives_the_same_surface(work):
    pytest.importorskip("distributed")
    argv = ["plane", *BASE, "--weights", "final.pt", "--steps", "5"]
    assert main([*argv, "--store", "a.zarr"]) == 0
    assert main([*argv, "--store", "b.zarr", "--executor", "local:2"]) == 0
    np.testing.assert_array_equal(io.load("a.zarr").loss, io.load("b.zarr").loss)
    assert main([*argv, "--store", "c.zarr", "--executor", "local:two"]) == 2


def test_pca_of_a_recorded_trajectory_equals_the_checkpoint_folder(work):
    ns: dict = {}
    exec(MODEL_FILE, ns)
    model = ns["make_model"]()
    rec = lnn.Recorder(model, store=work / "rec.zarr")
    for path in sorted((work / "ckpts").iterdir(), key=lambda p: int(p.stem[4:])):
        model.load_state_dict(torch.load(path, weights_only=True))
        rec(int(path.stem[4:]))
    common = [*BASE, "--steps", "5", "--device", "cpu"]
    assert main(["pca", *common, "--trajectory", "rec.zarr", "--store", "t.zarr"]) == 0
    assert main(["pca", *common, "--checkpoints", "ckpts", "--store", "c.zarr"]) == 0
    t, c = io.load(work / "t.zarr"), io.load(work / "c.zarr")
    np.testing.assert_allclose(t.loss, c.loss, rtol=1e-5)
    np.testing.assert_allclose(
        t.metadata["trajectory"]["coords"],
        c.metadata["trajectory"]["coords"],
        atol=1e-5,
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["pca", *BASE], "give exactly one of `--trajectory`"),
        (["pca", *BASE, "--checkpoints", "nowhere"], "`--checkpoints` must be a"),
        (["pca", *BASE, "--trajectory", "none.zarr"], "`--trajectory` must be a"),
        (["pca", *BASE, "--checkpoints", "ckpts", "--center", "middle"], "`--center`"),
        (["hessian", *BASE, "--out", "h.txt"], "`--out` must end in .json"),
        (["run", "missing.toml"], "`EXPERIMENT` must be a .toml file"),
        (
            ["line", *BASE, "--weights", "final.pt"] * 1
            + ["--weights", "final.pt", "--weights", "final.pt"],
            "given once",
        ),
    ],
)
def test_more_bad_input(work, capsys, argv, message):
    store = ["--store", "x.zarr"] if argv[0] in ("pca", "line") else []
    assert main([*argv, *store]) == 2
    assert message in capsys.readouterr().err
    _no_store(work)


def test_bad_experiment_files(work, capsys):
    (work / "bad.toml").write_text(
        'command = "plane"\nmodel = "nets.py:make_model"\n'
        'data = "nets.py:batch"\nstpes = 3\n'
    )
    assert main(["run", "bad.toml"]) == 2
    assert "unknown setting(s) ['stpes'] for plane" in capsys.readouterr().err
    (work / "bad.toml").write_text('command = "surface"\n')
    assert main(["run", "bad.toml"]) == 2
    assert "`command` in bad.toml must be one of" in capsys.readouterr().err


def test_ctrl_c_anywhere_exits_130_without_traceback(work, capsys, monkeypatch):
    from lossmap._cli import inputs

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(inputs, "load_data", interrupt)
    assert main(["plane", *BASE, "--store", "x.zarr"]) == 130
    err = capsys.readouterr().err
    assert "interrupted" in err
    assert "Traceback" not in err
    _no_store(work)


def test_a_real_sigint_exits_130_without_traceback(work):
    import signal
    import time

    (work / "slow.py").write_text(
        textwrap.dedent(
            """
            import pathlib, time
            import torch

            def make():
                pathlib.Path("ready").touch()
                time.sleep(60)
                return torch.nn.Linear(2, 2)
            """
        )
    )
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lossmap",
            "plane",
            "--model",
            "slow.py:make",
            "--data",
            "nets.py:batch",
            "--store",
            "s.zarr",
        ],
        cwd=work,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not (work / "ready").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "interrupted before anything was saved in s.zarr" in err
    assert "Traceback" not in err
    _no_store(work)


def _bn_checkpoints(work):
    """Checkpoints bn/step{9,19,29}.pt of nets.py's BatchNorm model, trained
    on shifted inputs (so its running statistics move away from 0 and 1)."""
    ns: dict = {}
    exec(MODEL_FILE, ns)
    model, (x, y) = ns["make_bn"](), ns["batch"]()
    opt = torch.optim.SGD(model.parameters(), lr=0.3)
    (work / "bn").mkdir()
    for step in range(30):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x + 2.0), y).backward()
        opt.step()
        if step % 10 == 9:
            torch.save(model.state_dict(), work / "bn" / f"step{step}.pt")
    return ns, (x, y)


def test_pca_takes_batchnorm_statistics_from_the_last_checkpoint(work):
    ns, (x, y) = _bn_checkpoints(work)
    argv = ["pca", "--model", "nets.py:make_bn", "--data", "nets.py:batch"]
    assert (
        main(
            [
                *argv,
                "--checkpoints",
                "bn",
                "--span",
                "1",
                "--steps",
                "5",
                "--store",
                "bn.zarr",
            ]
        )
        == 0
    )
    s = io.load(work / "bn.zarr")
    fresh = ns["make_bn"]()
    fresh.load_state_dict(torch.load(work / "bn" / "step29.pt", weights_only=True))
    fresh.eval()
    with torch.no_grad():
        ref = float(torch.nn.functional.cross_entropy(fresh(x), y))
    # the running statistics (of x + 2) differ from the factory's (0 and 1)
    assert s.loss[2, 2] == pytest.approx(ref, rel=1e-5)


def test_pca_true_loss_of_each_checkpoint_uses_its_own_batchnorm_statistics(work):
    # a checkpoint folder holds each snapshot's running statistics: the true
    # loss of snapshot i is the loss of checkpoint i loaded into a fresh model
    ns, (x, y) = _bn_checkpoints(work)
    argv = ["pca", "--model", "nets.py:make_bn", "--data", "nets.py:batch"]
    argv += ["--checkpoints", "bn", "--steps", "3", "--store", "bn.zarr"]
    assert main(argv) == 0
    true_loss = io.load(work / "bn.zarr").metadata["trajectory"]["true_loss"]
    refs = []
    for step in (9, 19, 29):
        fresh = ns["make_bn"]()
        state = torch.load(work / "bn" / f"step{step}.pt", weights_only=True)
        fresh.load_state_dict(state)
        fresh.eval()
        with torch.no_grad():
            refs.append(float(torch.nn.functional.cross_entropy(fresh(x), y)))
    assert true_loss == pytest.approx(refs, rel=1e-5)


def test_line_between_batchnorm_checkpoints_warns_that_a_keeps_its_statistics(
    work, capsys
):
    ns: dict = {}
    exec(MODEL_FILE, ns)
    model, (x, y) = ns["make_bn"](), ns["batch"]()
    torch.save(model.state_dict(), work / "a.pt")
    opt = torch.optim.SGD(model.parameters(), lr=0.3)
    for _ in range(10):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x + 2.0), y).backward()
        opt.step()
    torch.save(model.state_dict(), work / "b.pt")
    argv = ["line", "--model", "nets.py:make_bn", "--data", "nets.py:batch"]
    argv += ["--weights", "a.pt", "--weights", "b.pt", "--span", "0,1", "--steps", "3"]
    assert main([*argv, "--store", "l.zarr"]) == 0
    err = capsys.readouterr().err
    assert "warning: --bn eval keeps a.pt's BatchNorm running statistics" in err
    # and the warning is true: the value at 1 is not b.pt's own loss
    fresh = ns["make_bn"]()
    fresh.load_state_dict(torch.load(work / "b.pt", weights_only=True))
    fresh.eval()
    with torch.no_grad():
        ref = float(torch.nn.functional.cross_entropy(fresh(x), y))
    assert abs(io.load(work / "l.zarr").loss[-1] - ref) > 1e-3
    assert main([*argv, "--bn", "recompute"]) == 0
    assert "warning" not in capsys.readouterr().err


def test_output_loss_reads_the_models_own_loss_on_a_mapping_batch(work):
    argv = ["plane", "--model", "nets.py:WithLoss", "--data", "nets.py:labelled"]
    argv += ["--loss", "output.loss", "--steps", "3", "--store", "o.zarr"]
    assert main(argv) == 0
    s = io.load(work / "o.zarr")
    ns: dict = {}
    exec(MODEL_FILE, ns)
    model = ns["WithLoss"]()
    d1, d2 = lnn.random_plane(model, seed=0)
    batch = ns["labelled"]()
    w = {n: p.detach().clone() for n, p in model.named_parameters()}
    for i, j in [(0, 0), (1, 1), (2, 0)]:
        a, b = s.coords(0)[i], s.coords(1)[j]
        with torch.no_grad():
            for n, p in model.named_parameters():
                p.copy_(w[n] + a * d1.tensors[n] + b * d2.tensors[n])
            ref = float(model(**batch)["loss"])
        assert s.loss[i, j] == pytest.approx(ref, rel=1e-5)


def test_hessian_of_the_models_own_loss(work):
    argv = ["hessian", "--model", "nets.py:WithLoss", "--data", "nets.py:labelled"]
    argv += ["--loss", "output.loss", "--top", "1", "--probes", "4", "--no-density"]
    assert main([*argv, "--out", "h.json"]) == 0
    result = json.loads((work / "h.json").read_text())
    ns: dict = {}
    exec(MODEL_FILE, ns)
    model, batch = ns["WithLoss"](), ns["labelled"]()
    x, y = batch["x"].double(), batch["labels"]
    w0 = torch.cat([model.body.weight.detach().reshape(-1), model.body.bias.detach()])

    def f(flat):
        w, b = flat[:12].reshape(3, 4), flat[12:]
        return torch.nn.functional.cross_entropy(x @ w.T + b, y)

    dense = torch.func.hessian(f)(w0.double())
    top = float(np.linalg.eigvalsh(dense.numpy())[-1])
    assert result["eigenvalues"][0] == pytest.approx(top, rel=1e-4)


def test_subset_adds_a_spread_the_report_draws(work):
    argv = ["line", *BASE, "--weights", "final.pt", "--steps", "5", "--subset", "32"]
    assert main([*argv, "--store", "s.zarr"]) == 0
    s = io.load(work / "s.zarr")
    assert "loss_stderr" in s.field_names
    assert s.metadata["data"]["subset"] == 32
    assert np.all(s.field("loss_stderr") > 0)
    assert main(["report", "s.zarr", "--out", "r.html"]) == 0
    assert "2 standard errors" in (work / "r.html").read_text()


def test_call_and_targets_conventions(work):
    argv = ["plane", "--model", "nets.py:ByName", "--data", "nets.py:named"]
    argv += ["--call", "nets.py:run_features", "--targets", "y", "--steps", "3"]
    assert main([*argv, "--store", "n.zarr"]) == 0
    s = io.load(work / "n.zarr")
    assert "--targets" in s.metadata["_command"]
    ns: dict = {}
    exec(MODEL_FILE, ns)
    model, b = ns["ByName"](), ns["named"]()
    d1, d2 = lnn.random_plane(model, seed=0)
    w = {n: p.detach().clone() for n, p in model.named_parameters()}
    a, c = s.coords(0)[2], s.coords(1)[0]
    with torch.no_grad():
        for n, p in model.named_parameters():
            p.copy_(w[n] + a * d1.tensors[n] + c * d2.tensors[n])
        ref = float(torch.nn.functional.cross_entropy(model(b["features"]), b["y"]))
    assert s.loss[2, 0] == pytest.approx(ref, rel=1e-5)
