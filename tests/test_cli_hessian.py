"""`lossmap hessian`: every option end to end, against the Python API and
exact dense matrices of the small model of tests/test_cli_network.py."""

from __future__ import annotations

import importlib.util
import json
import shlex
import textwrap
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from lossmap.cli import main  # noqa: E402
from lossmap.nn import curvature as C  # noqa: E402

# the model file, its `work` folder fixture and BASE of the network CLI tests
_spec = importlib.util.spec_from_file_location(
    "_cli_network_tests", Path(__file__).with_name("test_cli_network.py")
)
_net = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_net)
MODEL_FILE, BASE, work = _net.MODEL_FILE, _net.BASE, _net.work

QUICK = ["--probes", "0", "--no-density"]


def _model(weights: Path | None = None):
    ns: dict = {}
    exec(MODEL_FILE, ns)
    model = ns["make_model"]()
    if weights is not None:
        model.load_state_dict(torch.load(weights, weights_only=True))
    x, y = ns["batch"]()
    return model, x, y


def _dense_hessian(model, x, y, names=None) -> np.ndarray:
    """The exact Hessian of the mean cross-entropy in float64, by autograd."""
    values = {n: p.detach().double() for n, p in model.named_parameters()}
    names = names or list(values)
    shapes = [values[n].shape for n in names]
    sizes = [values[n].numel() for n in names]
    net = _model()[0].double()

    def f(flat):
        parts = dict(values)
        for n, s, t in zip(names, shapes, torch.split(flat, sizes)):
            parts[n] = t.reshape(s)
        out = torch.func.functional_call(net, parts, (x.double(),))
        return F.cross_entropy(out, y)

    flat = torch.cat([values[n].reshape(-1) for n in names])
    return torch.autograd.functional.hessian(f, flat).numpy()


def _run(argv, capsys):
    code = main(argv)
    out = capsys.readouterr()
    assert code == 0, out.err
    return out.out


def test_top_and_bottom_against_the_dense_hessian_json_and_report(work, capsys):
    # the untrained model sits near a saddle: negative eigenvalues at the bottom
    argv = ["hessian", *BASE, "--top", "3", "--bottom", "2", *QUICK]
    out = _run([*argv, "--out", "h.json"], capsys)
    r = json.loads((work / "h.json").read_text())
    model, x, y = _model()
    lam = np.linalg.eigvalsh(_dense_hessian(model, x, y))
    assert lam[0] < -0.1  # a real saddle, so --bottom has something to find
    np.testing.assert_allclose(r["eigenvalues"], lam[::-1][:3], atol=2e-5)
    np.testing.assert_allclose(r["bottom"]["eigenvalues"], lam[:2], atol=2e-5)
    assert r["converged"] == [True] * 3
    assert r["bottom"]["converged"] == [True] * 2
    assert max(r["residuals"] + r["bottom"]["residuals"]) <= r["lanczos"]["tolerance"]
    # the record: matrix, selection, products, the command
    assert r["kind"] == "nn.hessian"
    assert r["matrix"] == "hessian"
    assert r["dim"] == 67
    assert r["params"] == [
        "0.weight",
        "0.bias",
        "2.weight",
        "2.bias",
    ]
    assert r["selection"] == {"given": None, "sizes": [32, 8, 24, 3], "bn": "eval"}
    assert r["samples"] == 64
    assert r["loss"] == pytest.approx(
        float(F.cross_entropy(model(x), y).detach()), rel=1e-5
    )
    assert r["lanczos"]["products"] == r["products"] == r["lanczos"]["iterations"]
    assert "trace" not in r
    assert "density" not in r
    assert "blocks" not in r
    assert r["_command"][:2] == ["lossmap", "hessian"]
    assert "--no-density" in r["_command"]
    # the summary says the matrix, the flags and the products
    assert "matrix: hessian (Hessian) over 67 parameter values in 4 tensors" in out
    assert "top eigenvalues: " in out
    assert "bottom eigenvalues: " in out
    assert out.count("(converged)") == 5
    assert f"products: {r['products']} matrix-vector products in all" in out
    # lossmap report reads it and shows the new fields
    assert main(["report", "h.json", "--out", "r.html"]) == 0
    page = (work / "r.html").read_text()
    assert "Bottom eigenvalues" in page
    assert "all converged" in page
    assert f"{r['products']} matrix-vector products" in page


def test_the_recorded_command_recomputes_the_result(work, capsys):
    argv = ["hessian", *BASE, "--weights", "final.pt", "--params", "2.*"]
    argv += ["--top", "2", "--bottom", "1", "--probes", "12", "--no-density"]
    _run([*argv, "--trace-method", "hutchpp", "--out", "a.json"], capsys)
    a = json.loads((work / "a.json").read_text())
    command = a["_command"]
    command[command.index("--out") + 1] = "b.json"
    assert main(command[1:]) == 0
    b = json.loads((work / "b.json").read_text())
    assert b["eigenvalues"] == a["eigenvalues"]
    assert b["trace"] == a["trace"]
    assert b["selection"]["given"] == ["2.*"]
    assert b["params"] == ["2.weight", "2.bias"]


def test_ggn_against_the_librarys_ggn(work, capsys):
    argv = ["hessian", *BASE, "--weights", "final.pt", "--matrix", "ggn"]
    out = _run(
        [*argv, "--top", "2", "--bottom", "1", *QUICK, "--out", "g.json"], capsys
    )
    r = json.loads((work / "g.json").read_text())
    model, x, y = _model(work / "final.pt")
    G = C.GGNOperator(model.double(), F.cross_entropy, (x.double(), y)).dense()
    lam = np.linalg.eigvalsh(G.numpy())
    assert r["matrix"] == "ggn"
    np.testing.assert_allclose(r["eigenvalues"], lam[::-1][:2], rtol=1e-4)
    # positive semi-definite: the smallest is 0 up to the tolerance
    assert abs(r["bottom"]["eigenvalues"][0] - lam[0]) <= r["lanczos"]["tolerance"]
    assert "matrix: ggn (generalised Gauss-Newton) over 67 parameter values" in out
    # not the Hessian: at a trained point the two differ
    H = np.linalg.eigvalsh(_dense_hessian(model, x, y))
    assert abs(H[-1] - lam[-1]) > 1e-3


def test_empirical_fisher_against_per_sample_gradients(work, capsys):
    argv = ["hessian", *BASE, "--weights", "final.pt", "--matrix", "empirical_fisher"]
    _run([*argv, "--top", "2", *QUICK, "--out", "e.json"], capsys)
    r = json.loads((work / "e.json").read_text())
    model, x, y = _model(work / "final.pt")
    grads = []
    for xi, yi in zip(x, y):
        model.zero_grad()
        F.cross_entropy(model(xi[None]), yi[None]).backward()
        grads.append(torch.cat([p.grad.reshape(-1) for p in model.parameters()]))
    g = torch.stack(grads).double()
    lam = np.linalg.eigvalsh((g.T @ g / len(g)).numpy())
    assert r["matrix"] == "empirical_fisher"
    np.testing.assert_allclose(r["eigenvalues"], lam[::-1][:2], rtol=1e-4)


def test_fisher_infers_the_likelihood_of_cross_entropy(work, capsys):
    argv = ["hessian", *BASE, "--weights", "final.pt", "--matrix", "fisher"]
    _run([*argv, "--top", "2", "--seed", "3", *QUICK, "--out", "f.json"], capsys)
    r = json.loads((work / "f.json").read_text())
    assert r["likelihood"] == "categorical"
    assert r["fisher_samples"] == 1
    model, x, y = _model(work / "final.pt")
    ref = C.FisherOperator(model, F.cross_entropy, (x, y), seed=3)  # same draws
    lam = np.linalg.eigvalsh(ref.dense().double().numpy())
    np.testing.assert_allclose(r["eigenvalues"], lam[::-1][:2], rtol=1e-4)
    # a loss of the user's own: --likelihood says what it is
    argv += ["--loss", "nets.py:ce_interrupted", "--likelihood", "categorical"]
    _run(
        [*argv, "--fisher-samples", "2", "--top", "1", *QUICK, "--out", "u.json"],
        capsys,
    )
    r = json.loads((work / "u.json").read_text())
    assert r["likelihood"] == "categorical"
    assert r["fisher_samples"] == 2
    ref = C.FisherOperator(model, F.cross_entropy, (x, y), samples=2, seed=0)
    top = np.linalg.eigvalsh(ref.dense().double().numpy())[-1]
    assert r["eigenvalues"][0] == pytest.approx(top, rel=1e-4)
    assert abs(top - lam[-1]) > 1e-4  # other draws, another matrix


def test_trace_hutchinson_with_target_se_and_hutchpp(work, capsys):
    common = ["hessian", *BASE, "--weights", "final.pt", "--top", "0", "--no-density"]
    model, x, y = _model(work / "final.pt")
    exact = float(np.trace(_dense_hessian(model, x, y)))
    op = C.HessianOperator(model, F.cross_entropy, (x, y))

    # Hutchinson stops once the standard error reaches --target-se
    argv = [*common, "--probes", "400", "--target-se", "0.3", "--seed", "2"]
    out = _run([*argv, "--out", "t.json"], capsys)
    tr = json.loads((work / "t.json").read_text())["trace"]
    api = C.hutchinson(op, probes=400, target_se=0.3, seed=2)
    assert tr["value"] == pytest.approx(api.value, rel=1e-6)
    assert tr["probes"] == api.probes < 400
    assert tr["stderr"] <= 0.3
    assert tr["target_met"] is True
    assert tr["method"] == "hutchinson"
    assert tr["max_probes"] == 400
    assert abs(tr["value"] - exact) < 4 * tr["stderr"]
    assert f"± {tr['stderr']:.3g} (hutchinson, {tr['probes']} probes" in out

    # Hutch++ (67 parameters: a sketch of 32, the remainder by 20 probes); a
    # target it cannot reach in 20 probes is said so, also by the report
    argv = [*common, "--trace-method", "hutchpp", "--probes", "20"]
    out = _run([*argv, "--target-se", "1e-6", "--out", "pp.json"], capsys)
    api = C.hutchpp(op, probes=20, target_se=1e-6)
    assert f"trace: {api.value:.6g} ± {api.stderr:.3g} (hutch++, 20 probes" in out
    assert abs(api.value - exact) < 4 * api.stderr
    assert "is above --target-se 1e-06 after the most probes (20)" in out
    assert json.loads((work / "pp.json").read_text())["trace"]["target_met"] is False
    assert main(["report", "pp.json", "--out", "pp.html"]) == 0
    assert "the target ± 1e-06 was not reached" in (work / "pp.html").read_text()


def test_blocks_per_module_against_the_dense_blocks(work, capsys):
    argv = ["hessian", *BASE, "--weights", "final.pt", "--top", "1", "--probes", "30"]
    out = _run([*argv, "--no-density", "--blocks", "module", "--out", "b.json"], capsys)
    r = json.loads((work / "b.json").read_text())
    model, x, y = _model(work / "final.pt")
    H = _dense_hessian(model, x, y)
    blocks = r["blocks"]
    assert blocks["by"] == "module"
    assert list(blocks["items"]) == ["0", "2"]
    start = 0
    for name, params in [("0", ["0.weight", "0.bias"]), ("2", ["2.weight", "2.bias"])]:
        b = blocks["items"][name]
        assert b["params"] == params
        Hb = H[start : start + b["dim"], start : start + b["dim"]]
        start += b["dim"]
        top = np.linalg.eigvalsh(Hb)[-1]
        assert b["top"]["eigenvalues"][0] == pytest.approx(top, rel=1e-4, abs=1e-6)
        assert b["top"]["converged"] == [True]
        tr = b["trace"]
        if b["dim"] <= 32:  # Hutch++ with a sketch as large as the block: exact
            assert tr["method"] == "exact"
            assert tr["stderr"] == 0
            assert tr["value"] == pytest.approx(np.trace(Hb), rel=1e-5)
        else:
            assert tr["method"] == "hutch++"
            assert abs(tr["value"] - np.trace(Hb)) < 4 * tr["stderr"]
        assert b["products"] > 0
    assert start == r["dim"]
    assert r["products"] == (
        r["lanczos"]["products"] + r["trace"]["products"] + blocks["products"]
    )
    assert "blocks (by module):" in out
    assert "27 values" in out


def test_density_with_several_probes_and_their_spread(work, capsys):
    argv = ["hessian", *BASE, "--weights", "final.pt", "--top", "0", "--probes", "0"]
    argv += ["--density-probes", "3", "--density-steps", "20", "--seed", "1"]
    out = _run([*argv, "--out", "d.json"], capsys)
    d = json.loads((work / "d.json").read_text())["density"]
    model, x, y = _model(work / "final.pt")
    op = C.HessianOperator(model, F.cross_entropy, (x, y))
    api = C.slq(op, iterations=20, probes=3, seed=1)
    # float32 products: the two runs agree to rounding, relative to the range
    scale = float(np.ptp(api.grid))
    np.testing.assert_allclose(d["grid"], api.grid, rtol=1e-5, atol=1e-6 * scale)
    # a node moved by float32 rounding (1e-7) moves the steep flanks of its
    # Gaussian by more than that: compare against the density's own scale
    peak = float(np.max(api.density))
    np.testing.assert_allclose(d["density"], api.density, rtol=1e-5, atol=1e-4 * peak)
    np.testing.assert_allclose(d["spread"], api.spread, rtol=1e-5, atol=1e-4 * peak)
    assert d["probes"] == 3
    assert d["steps"] == 20
    assert d["products"] >= 60
    assert d["mean"] == pytest.approx(api.mean)
    assert d["mean_stderr"] > 0
    assert "(3 probes × 20 steps" in out
    assert "largest spread ±" in out


def test_tol_and_max_iter_reach_lanczos_and_unconverged_pairs_say_so(work, capsys):
    argv = ["hessian", *BASE, "--weights", "final.pt", "--top", "3", *QUICK]
    _run([*argv, "--tol", "1e-2", "--out", "loose.json"], capsys)
    _run([*argv, "--out", "tight.json"], capsys)
    loose = json.loads((work / "loose.json").read_text())
    tight = json.loads((work / "tight.json").read_text())
    assert loose["lanczos"]["tol"] == 1e-2
    assert loose["lanczos"]["tolerance"] > 100 * tight["lanczos"]["tolerance"]
    assert loose["lanczos"]["iterations"] < tight["lanczos"]["iterations"]
    out = _run([*argv, "--max-iter", "4", "--out", "short.json"], capsys)
    short = json.loads((work / "short.json").read_text())
    assert short["lanczos"]["iterations"] == 4
    assert short["lanczos"]["max_iter"] == 4
    assert False in short["converged"]
    assert "NOT converged" in out
    assert "some pairs did not converge: raise --max-iter" in out
    # more steps than parameter values: the whole space, exact
    out = _run(
        [*argv, "--max-iter", "1000", "--tol", "1e-12", "--out", "a.json"], capsys
    )
    whole = json.loads((work / "a.json").read_text())
    assert whole["lanczos"]["max_iter"] == 67  # capped at the dimension
    assert whole["lanczos"]["tol"] == 1e-12
    assert whole["lanczos"]["tol_used"] == pytest.approx(100 * 2.0**-23)
    assert whole["converged"] == [True] * 3
    assert "--tol 1e-12 is below what torch.float32 products can resolve" in out


def test_experiment_file_takes_the_same_keys(work, capsys):
    toml = textwrap.dedent(
        """
        command = "hessian"
        model = "nets.py:make_model"
        weights = "final.pt"
        data = "nets.py:batch"
        matrix = "ggn"
        top = 2
        bottom = 1
        tol = 1e-6
        probes = 30
        trace-method = "hutchpp"
        target-se = 0.5
        blocks = "parameter"
        density = false
        params = ["2.weight", "2.bias"]
        out = "exp.json"
        """
    )
    (work / "exp.toml").write_text(toml)
    _run(["run", "exp.toml"], capsys)
    r = json.loads((work / "exp.json").read_text())
    assert r["_experiment"] == toml
    assert r["matrix"] == "ggn"
    assert len(r["bottom"]["eigenvalues"]) == 1
    assert r["trace"]["target_se"] == 0.5
    assert r["lanczos"]["tol"] == 1e-6
    assert list(r["blocks"]["items"]) == ["2.weight", "2.bias"]
    direct = shlex.split(
        "hessian --model nets.py:make_model --weights final.pt --data nets.py:batch "
        "--matrix ggn --top 2 --bottom 1 --tol 1e-6 --probes 30 --trace-method hutchpp "
        "--target-se 0.5 --blocks parameter --no-density --params 2.weight,2.bias "
        "--out direct.json"
    )
    _run(direct, capsys)
    d = json.loads((work / "direct.json").read_text())
    for key in ("eigenvalues", "bottom", "trace", "blocks", "products", "params"):
        assert d[key] == r[key], key


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            ["--matrix", "foo"],
            "`--matrix` must be one of ['hessian', 'ggn', 'empirical_fisher', "
            "'fisher'], got 'foo'",
        ),
        (["--matrix", "ef"], "got 'ef'"),
        (["--bottom", "-1"], "`--bottom` must be >= 0, got -1"),
        (["--top", "-2"], "`--top` must be >= 0, got -2"),
        (["--target-se", "0"], "`--target-se` must be > 0.0, got 0.0"),
        (["--target-se", "nan"], "`--target-se` must be finite, got nan"),
        (["--tol", "-1e-3"], "`--tol` must be > 0.0, got -0.001"),
        (["--max-iter", "0"], "`--max-iter` must be >= 1, got 0"),
        (
            ["--max-iter", "2", "--bottom", "3"],
            "`--max-iter` must be at least the eigenvalues asked for at one end "
            "(--top/--bottom, 5), got 2",
        ),
        (["--probes", "1"], "`--probes` must be 0 (no trace) or >= 2"),
        (["--probes", "0", "--target-se", "0.1"], "`--target-se` needs a trace"),
        (
            ["--trace-method", "exact"],
            "`--trace-method` must be one of ['hutchinson', 'hutchpp'], got 'exact'",
        ),
        (
            ["--blocks", "layer"],
            "`--blocks` must be one of ['module', 'parameter'], got 'layer'",
        ),
        (["--density-probes", "0"], "`--density-probes` must be >= 1, got 0"),
        (["--density-steps", "1"], "`--density-steps` must be >= 2, got 1"),
        (
            ["--likelihood", "gaussian"],
            "`--likelihood` applies to --matrix fisher only, got --matrix hessian",
        ),
        (
            ["--fisher-samples", "4", "--matrix", "ggn"],
            "`--fisher-samples` applies to --matrix fisher only, got --matrix ggn",
        ),
        (
            ["--matrix", "fisher", "--likelihood", "poisson"],
            "`--likelihood` must be one of ['categorical', 'gaussian', "
            "'bernoulli'], got 'poisson'",
        ),
        (
            ["--matrix", "fisher", "--fisher-samples", "0"],
            "`--fisher-samples` must be >= 1, got 0",
        ),
        (
            ["--matrix", "fisher", "--loss", "huber"],
            "`--matrix fisher` needs the likelihood behind `--loss`: give "
            "`--likelihood` (one of ['categorical', 'gaussian', 'bernoulli']); it is "
            "known only for the losses ['bce_with_logits', "
            "'binary_cross_entropy_with_logits', 'cross_entropy', 'mse', "
            "'mse_loss'], got --loss 'huber'",
        ),
        (["--out", "h.txt"], "`--out` must end in .json, got 'h.txt'"),
    ],
)
def test_bad_options_name_the_option_and_write_nothing(work, capsys, extra, message):
    argv = ["hessian", *BASE, *extra]
    if "--out" not in extra:
        argv += ["--out", "bad.json"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err
    assert not (work / "bad.json").exists()


def test_bad_keys_in_an_experiment_file_name_the_option(work, capsys):
    (work / "bad.toml").write_text(
        'command = "hessian"\nmodel = "nets.py:make_model"\n'
        'data = "nets.py:batch"\nbottom = "2"\n'
    )
    assert main(["run", "bad.toml"]) == 2
    assert "`--bottom` must be an integer, got '2'" in capsys.readouterr().err
    (work / "bad.toml").write_text(
        'command = "hessian"\nmodel = "nets.py:make_model"\n'
        'data = "nets.py:batch"\nmatrix = "gauss-newton"\n'
    )
    assert main(["run", "bad.toml"]) == 2
    assert "`--matrix` must be one of" in capsys.readouterr().err


def test_help_lists_the_librarys_names(capsys):
    from lossmap._cli.hessian import TRACE_METHODS

    assert main(["hessian", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    for name in [*C.MATRICES, *C.LIKELIHOODS, *TRACE_METHODS, "module", "parameter"]:
        assert name in text, name
    for option in ["--matrix", "--bottom", "--tol", "--trace-method", "--target-se"]:
        assert option in text


def test_through_typers_cli_runner(work):
    from typer.testing import CliRunner

    from lossmap.cli import app

    runner = CliRunner()
    argv = ["hessian", *BASE, "--params", "2.*", "--matrix", "ggn", "--top", "1"]
    result = runner.invoke(app, [*argv, *QUICK, "--bottom", "1", "--out", "c.json"])
    assert result.exit_code == 0, result.output
    assert "matrix: ggn (generalised Gauss-Newton) over 27 parameter values" in (
        result.output
    )
    assert "bottom eigenvalues: " in result.output
    assert json.loads((work / "c.json").read_text())["matrix"] == "ggn"
    bad = runner.invoke(app, ["hessian", *BASE, "--bottom", "-1"])
    assert isinstance(bad.exception, ValueError)
    assert str(bad.exception) == "`--bottom` must be >= 0, got -1"


def test_from_a_shell_as_a_user_would(work):
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(_net.SRC), "LOSSMAP_PROGRESS": "off"}
    argv = [sys.executable, "-m", "lossmap", "hessian", *BASE, "--top", "2"]
    done = subprocess.run(
        [*argv, "--trace-method", "hutchpp", "--probes", "16", "--no-density"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "top eigenvalues: " in done.stdout
    assert "(hutch++, 16 probes" in done.stdout
    bad = subprocess.run(
        [*argv, "--matrix", "foo"], capture_output=True, text=True, env=env, timeout=60
    )
    assert bad.returncode == 2
    assert bad.stderr.startswith("error: `--matrix` must be one of")
    assert "Traceback" not in bad.stderr
