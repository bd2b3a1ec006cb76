"""lossmap.optim: update rules against torch.optim, schedules, run() statuses."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lossmap import optim
from lossmap.toy import functions

torch = pytest.importorskip("torch")

START = (-1.2, 1.0)


def _torch_rosenbrock(p):
    x, y = p[0], p[1]
    return (1 - x) ** 2 + 100 * (y - x * x) ** 2


def _torch_himmelblau(p):
    x, y = p[0], p[1]
    return (x * x + y - 11) ** 2 + (x + y * y - 7) ** 2


def _torch_path(make, fn, start, steps, lam=None):
    """Reference path: ``steps`` torch.optim steps in float64 (autograd grads)."""
    p = torch.tensor(start, dtype=torch.float64, requires_grad=True)
    opt = make([p])
    sched = None if lam is None else torch.optim.lr_scheduler.LambdaLR(opt, lam)
    out = [p.detach().clone().numpy()]
    for _ in range(steps):
        opt.zero_grad()
        fn(p).backward()
        opt.step()
        if sched is not None:
            sched.step()
        out.append(p.detach().clone().numpy())
    return np.array(out)


# (ours, torch factory, landscape, torch fn, start)
CASES = {
    "sgd": (optim.sgd(1e-3), lambda p: torch.optim.SGD(p, lr=1e-3)),
    "gd": (optim.gd(1e-3), lambda p: torch.optim.SGD(p, lr=1e-3)),
    "sgd-momentum": (
        optim.sgd(5e-4, momentum=0.9),
        lambda p: torch.optim.SGD(p, lr=5e-4, momentum=0.9),
    ),
    "momentum": (
        optim.momentum(5e-4, beta=0.8),
        lambda p: torch.optim.SGD(p, lr=5e-4, momentum=0.8),
    ),
    "sgd-nesterov": (
        optim.sgd(5e-4, momentum=0.9, nesterov=True),
        lambda p: torch.optim.SGD(p, lr=5e-4, momentum=0.9, nesterov=True),
    ),
    "nesterov": (
        optim.nesterov(5e-4),
        lambda p: torch.optim.SGD(p, lr=5e-4, momentum=0.9, nesterov=True),
    ),
    "sgd-weight-decay": (
        optim.sgd(1e-3, momentum=0.5, weight_decay=0.1),
        lambda p: torch.optim.SGD(p, lr=1e-3, momentum=0.5, weight_decay=0.1),
    ),
    "adagrad": (optim.adagrad(0.1), lambda p: torch.optim.Adagrad(p, lr=0.1)),
    "adagrad-decay": (
        optim.adagrad(0.1, lr_decay=0.01, initial_accumulator=0.5),
        lambda p: torch.optim.Adagrad(
            p, lr=0.1, lr_decay=0.01, initial_accumulator_value=0.5
        ),
    ),
    "rmsprop": (optim.rmsprop(0.01), lambda p: torch.optim.RMSprop(p, lr=0.01)),
    "rmsprop-centered-momentum": (
        optim.rmsprop(0.005, alpha=0.9, momentum=0.5, centered=True),
        lambda p: torch.optim.RMSprop(
            p, lr=0.005, alpha=0.9, momentum=0.5, centered=True
        ),
    ),
    "adam": (optim.adam(0.05), lambda p: torch.optim.Adam(p, lr=0.05)),
    "adam-l2": (
        optim.adam(0.05, b1=0.8, b2=0.99, weight_decay=0.1),
        lambda p: torch.optim.Adam(p, lr=0.05, betas=(0.8, 0.99), weight_decay=0.1),
    ),
    "adamw": (
        optim.adamw(0.05, weight_decay=0.1),
        lambda p: torch.optim.AdamW(p, lr=0.05, weight_decay=0.1),
    ),
}

FUNCTIONS = {
    "rosenbrock": (functions.get("rosenbrock"), _torch_rosenbrock, START),
    "himmelblau": (functions.get("himmelblau"), _torch_himmelblau, (0.5, -1.5)),
}


@pytest.mark.parametrize("fname", sorted(FUNCTIONS))
@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_torch_optim_for_50_steps(case, fname):
    ours, make = CASES[case]
    f, tfn, start = FUNCTIONS[fname]
    lr = ours.lr
    if fname == "himmelblau" and ours.name in ("gd", "sgd", "momentum", "nesterov"):
        # Himmelblau's curvature is lower: a larger rate keeps the path moving.
        ours = ours.with_lr(lr * 10)
        make_ref = make

        def make(p):
            opt = make_ref(p)
            for group in opt.param_groups:
                group["lr"] *= 10
            return opt

    ref = _torch_path(make, tfn, start, 50)
    traj = optim.run(f, ours, start, steps=50, tol=0.0)
    assert traj.status == "max_steps"
    assert traj.params.shape == (51, 2)
    assert np.abs(ref[-1] - ref[0]).max() > 1e-3  # the path really moved
    np.testing.assert_allclose(traj.params, ref, rtol=0, atol=1e-10)


@pytest.mark.parametrize(
    ("ours", "make", "sched"),
    [
        (
            optim.adam,
            lambda p: torch.optim.Adam(p, lr=0.05),
            optim.cosine(0.05, steps=50, final=0.005),
        ),
        (
            optim.sgd,
            lambda p: torch.optim.SGD(p, lr=1e-3, momentum=0.9),
            optim.step_decay(1e-3, every=10, factor=0.5),
        ),
        (
            optim.rmsprop,
            lambda p: torch.optim.RMSprop(p, lr=0.01),
            optim.warmup_cosine(0.01, warmup=5, steps=50),
        ),
    ],
)
def test_schedules_match_torch_lambda_lr(ours, make, sched):
    base = sched.lr
    ref = _torch_path(make, _torch_rosenbrock, START, 50, lam=lambda t: sched(t) / base)
    kw = {"momentum": 0.9} if ours is optim.sgd else {}
    traj = optim.run(FUNCTIONS["rosenbrock"][0], ours(sched, **kw), START, steps=50)
    np.testing.assert_allclose(traj.params, ref, rtol=0, atol=1e-10)
    np.testing.assert_allclose(traj.lr, sched(np.arange(50)))


def test_schedule_values():
    assert optim.constant(0.1)(7) == 0.1
    s = optim.step_decay(1.0, every=3, factor=0.5)
    np.testing.assert_allclose(s(np.arange(7)), [1, 1, 1, 0.5, 0.5, 0.5, 0.25])
    assert optim.exponential(2.0, decay=0.9)(2) == pytest.approx(2 * 0.81)
    c = optim.cosine(1.0, steps=10, final=0.1)
    assert c(0) == pytest.approx(1.0)
    assert c(5) == pytest.approx(0.55)
    assert c(10) == pytest.approx(0.1)
    assert c(20) == pytest.approx(0.1)
    w = optim.warmup_cosine(1.0, warmup=4, steps=14)
    np.testing.assert_allclose(w(np.arange(4)), [0.25, 0.5, 0.75, 1.0])
    assert w(4) == pytest.approx(1.0)
    assert w(9) == pytest.approx(0.5)
    assert optim.schedule("step-decay", 1.0, every=3, factor=0.5) == s
    assert set(optim.schedule_names()) == {
        "constant",
        "step_decay",
        "exponential",
        "cosine",
        "warmup_cosine",
    }


# ------------------------------------------------------------ gd on a quadratic
KAPPA = 10.0


def test_gd_on_quadratic_converges_at_textbook_rate():
    """x_k = (1 − ηλ)^k x_0 per eigen-direction (Nocedal & Wright §3.3)."""
    f = functions.get("quadratic", condition=KAPPA)
    lam_min, lam_max = f.eigenvalues
    eta = 1.5 / lam_max  # below 2/λmax
    traj = optim.run(f, optim.gd(eta), [1.0, 1.0], steps=2000, tol=1e-10)
    assert traj.status == "converged"
    k = np.arange(traj.params.shape[0])
    expected = np.stack([(1 - eta * lam_min) ** k, (1 - eta * lam_max) ** k], -1)
    np.testing.assert_allclose(traj.params, expected, rtol=1e-9, atol=1e-300)
    rate = max(abs(1 - eta * lam_min), abs(1 - eta * lam_max))
    observed = traj.grad_norm[-1] / traj.grad_norm[-11]
    assert observed == pytest.approx(rate**10, rel=1e-6)
    # and it stopped exactly where the gradient norm first fell under tol
    assert traj.grad_norm[-1] < 1e-10 <= traj.grad_norm[-2]


@pytest.mark.parametrize("factor", [2.05, 2.5, 4.0])
def test_gd_above_two_over_lambda_max_diverges(factor):
    f = functions.get("quadratic", condition=KAPPA, angle=0.3)
    eta = factor / f.eigenvalues[1]
    traj = optim.run(f, optim.gd(eta), [1.0, 1.0], steps=5000, bound=1e6)
    assert traj.status == "diverged"
    s = traj.stopped_at
    assert traj.params.shape[0] == s + 1
    assert abs(traj.loss[s]) > 1e6 >= abs(traj.loss[s - 1])
    # the loss grows by (1 − ηλmax)² per step once the top direction dominates
    ratio = traj.loss[s] / traj.loss[s - 1]
    assert ratio == pytest.approx((1 - factor) ** 2, rel=1e-3)


def test_just_below_the_threshold_converges():
    f = functions.get("quadratic", condition=KAPPA)
    traj = optim.run(f, optim.gd(1.98 / KAPPA), [1.0, 1.0], steps=5000)
    assert traj.status == "converged"


# ------------------------------------------------------------- vectorised run
def test_many_starts_equal_single_runs(rng):
    f = functions.get("rosenbrock")
    starts = rng.uniform([-2, -1], [2, 3], size=(6, 2))
    starts[0] = (1.0, 1.0)  # converged at step 0
    starts[1] = (40.0, -40.0)  # too far: sgd diverges
    opt = optim.sgd(1e-3, momentum=0.9)
    many = optim.run(f, opt, starts, steps=300)
    assert many.params.shape[1:] == (6, 2)
    assert many.status[0] == "converged"
    assert many.stopped_at[0] == 0
    assert many.status[1] == "diverged"
    for i, s in enumerate(starts):
        one = optim.run(f, opt, s, steps=300)
        assert one.status == many.status[i]
        assert one.stopped_at == many.stopped_at[i]
        np.testing.assert_array_equal(one.params, many.path(i))
        # rows after the stop hold NaN
        assert np.isnan(many.params[many.stopped_at[i] + 1 :, i]).all()
    np.testing.assert_array_equal(many.final[2], many.path(2)[-1])


def test_trajectory_fields_and_immutability():
    f = functions.get("himmelblau")
    t = optim.run(f, optim.adam(0.1), [0.0, 0.0], steps=40, tol=0.0)
    assert t.optimizer == "adam"
    assert t.label == "adam (lr=0.1)"
    assert t.param_names == ("x", "y")
    assert t.loss.shape == t.grad_norm.shape == (41,)
    assert t.lr.shape == (40,)
    np.testing.assert_allclose(t.loss, f.loss_at(t.params))
    np.testing.assert_allclose(
        t.grad_norm, np.linalg.norm(f.grad_at(t.params), axis=-1)
    )
    with pytest.raises(ValueError, match="read-only"):
        t.params[0, 0] = 1.0
    assert t.describe()["status"] == "max_steps"


def test_sgd_minibatches_are_seeded_and_differ_from_full_batch():
    from lossmap import toy

    p = toy.problem("line", "noisy-line", "mse")
    kw = {"steps": 100, "tol": 0.0}
    a = optim.run(p, optim.sgd(0.1), [0.0, 0.0], batch_size=4, seed=3, **kw)
    b = optim.run(p, optim.sgd(0.1), [0.0, 0.0], batch_size=4, seed=3, **kw)
    c = optim.run(p, optim.sgd(0.1), [0.0, 0.0], batch_size=4, seed=4, **kw)
    full = optim.run(p, optim.sgd(0.1), [0.0, 0.0], **kw)
    np.testing.assert_array_equal(a.params, b.params)
    assert not np.allclose(a.params, c.params)
    assert not np.allclose(a.params, full.params)
    # a batch of all points is the full gradient
    n = len(p.data)
    whole = optim.run(p, optim.sgd(0.1), [0.0, 0.0], batch_size=n, seed=0, **kw)
    np.testing.assert_allclose(whole.params, full.params, atol=1e-14)
    # and SGD still gets near the least-squares minimum
    m = p.minimum()
    assert np.linalg.norm(a.params[-1] - m.theta) < 0.1


def test_registry_and_defaults():
    assert optim.available() == (
        "gd",
        "sgd",
        "momentum",
        "nesterov",
        "adagrad",
        "rmsprop",
        "adam",
        "adamw",
    )
    for name in optim.available():
        opt = optim.get(name)
        assert opt.name == name
        assert opt.lr == optim.DEFAULT_LR[name]
        state = opt.init(np.zeros((3, 2)))
        upd, state2 = opt.update(np.ones((3, 2)), state, np.zeros((3, 2)))
        assert upd.shape == (3, 2)
        assert state2.count == 1
        assert isinstance(state, tuple)
        assert hasattr(state, "_fields")
    assert optim.get("adam", lr=0.5, b1=0.5).hyper["b1"] == 0.5
    opt = optim.adam(0.1)
    assert optim.get(opt) is opt
    assert (
        optim.run(functions.get("booth"), "adam", [0, 0], steps=3).optimizer == "adam"
    )


def test_custom_optimizer():
    def init(params):
        return ()

    def update(g, state, params):
        return -0.1 * np.sign(g), state

    f = functions.get("booth")
    t = optim.run(f, optim.Optimizer(init, update), [0.0, 0.0], steps=5)
    np.testing.assert_allclose(t.params[1], [0.1, 0.1])
    assert np.isnan(t.lr).all()
    assert t.optimizer == "custom"
    with pytest.raises(ValueError, match="not a built-in"):
        optim.run(f, optim.Optimizer(init, update), [0, 0], steps=5, schedule=0.1)


@pytest.mark.parametrize(
    ("call", "exc", "message"),
    [
        (lambda: optim.gd(0.0), ValueError, "`lr` must be > 0"),
        (lambda: optim.gd("x"), TypeError, "`lr` must be a number"),
        (lambda: optim.sgd(0.1, nesterov=True), ValueError, "`nesterov` needs"),
        (lambda: optim.adam(0.1, b1=1.0), ValueError, "must be < 1"),
        (lambda: optim.get("lbfgs"), ValueError, "`optimizer` must be one of"),
        (lambda: optim.get("gd", beta=0.9), TypeError, "does not take"),
        (lambda: optim.step_decay(0.1, every=0, factor=0.5), ValueError, "`every`"),
        (lambda: optim.schedule("linear", 0.1), ValueError, "`schedule` must be"),
        (
            lambda: optim.run(functions.get("booth"), "gd", [0, 0], steps=0),
            ValueError,
            "`steps` must be >= 1",
        ),
        (
            lambda: optim.run(functions.get("booth"), "gd", [0, 0, 0], steps=3),
            ValueError,
            r"`start` must have shape \(2,\) or \(n, 2\)",
        ),
        (
            lambda: optim.run(
                functions.get("booth"), "gd", [0, 0], steps=3, batch_size=2
            ),
            TypeError,
            "`batch_size` needs a landscape with data",
        ),
        (
            lambda: optim.run(functions.get("booth"), 3, [0, 0], steps=3),
            TypeError,
            "`optimizer` must be",
        ),
    ],
)
def test_errors(call, exc, message):
    with pytest.raises(exc, match=message):
        call()


def test_seed_required_with_batches():
    from lossmap import toy

    p = toy.problem("line", "noisy-line", "mse")
    with pytest.raises(ValueError, match="`seed` is required"):
        optim.run(p, "sgd", [0, 0], steps=3, batch_size=2)


def test_nan_rows_are_documented_shape():
    f = functions.get("quadratic", condition=KAPPA)
    t = optim.run(f, optim.gd(0.25), [[1.0, 1.0], [0.0, 0.0]], steps=50)
    assert list(t.status) == ["diverged", "converged"]
    assert t.params.shape[0] == t.stopped_at.max() + 1
    assert math.isnan(t.loss[1, 1])
