"""Dask executor: a plane computed on a 2-worker local cluster equals the
in-process one; each call sends its evaluation spec once and releases it."""

from __future__ import annotations

import signal
import time
from concurrent.futures import Executor, Future

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("distributed")

import lossmap.nn as lnn  # noqa: E402
from lossmap.distributed import dask_executor  # noqa: E402
from lossmap.nn import engine  # noqa: E402


def _problem():
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3)
    )
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(96, 8, generator=gen)
    y = torch.randint(0, 3, (96,), generator=gen)
    return net, torch.nn.functional.cross_entropy, (x, y)


@pytest.mark.slow
def test_plane_on_local_cluster_equals_in_process(tmp_path):
    net, loss_fn, data = _problem()
    dirs = lnn.random_plane(net, seed=4)
    kw = {"span": 0.8, "steps": 9, "metrics": "accuracy", "chunk": 3, "progress": False}
    here = lnn.plane(net, loss_fn, data, dirs, **kw)
    with dask_executor(n_workers=2, threads_per_worker=1) as ex:
        # a local cluster listens on the loopback interface only
        assert ex._client.scheduler.address.startswith("tcp://127.0.0.1:")
        info = ex._client.scheduler_info()["workers"]
        assert len(info) == 2
        assert all(a.startswith("tcp://127.0.0.1:") for a in info)
        threads = ex._client.run(torch.get_num_threads)
        assert set(threads.values()) == {1}
        env = ex._client.run(
            lambda: {
                k: v for k, v in __import__("os").environ.items() if k[:7] == "MALLOC_"
            }
        )
        # both thresholds: setting only one turns glibc's sliding mmap
        # threshold off, and every tensor became a fresh mmap (1.7x slower)
        assert (
            list(env.values())
            == [
                {
                    "MALLOC_TRIM_THRESHOLD_": str(2**30),
                    "MALLOC_MMAP_THRESHOLD_": str(2**25),
                }
            ]
            * 2
        )
        there = lnn.plane(
            net, loss_fn, data, dirs, executor=ex, store=tmp_path / "p.zarr", **kw
        )
    for f in ("loss", "accuracy"):
        np.testing.assert_allclose(there.field(f), here.field(f), rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(there.coords("alpha"), here.coords("alpha"))
    assert not np.isnan(there.loss).any()


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"n_workers": 0}, ValueError, "`n_workers` must be >= 1"),
        ({"threads_per_worker": 0}, ValueError, "`threads_per_worker` must be >= 1"),
        ({"address": 8786}, TypeError, "scheduler address"),
        ({"dashboard": "no"}, TypeError, "`dashboard` must be True or False"),
        ({"security": "tls"}, TypeError, "`security` must be None, True or a"),
        (
            {"address": "tls://127.0.0.1:1", "security": True},
            ValueError,
            "`security=True` .* works only for a local cluster",
        ),
    ],
)
def test_bad_arguments_start_nothing(kwargs, error, message):
    with pytest.raises(error, match=message), dask_executor(**kwargs):
        pass  # pragma: no cover


def _listening(pid):
    import psutil

    return {
        c.laddr.port
        for c in psutil.Process(pid).net_connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN
    }


def _port(address):
    return int(address.rsplit(":", 1)[1])


@pytest.mark.slow
def test_dashboard_off_leaves_no_http_server():
    pytest.importorskip("psutil")
    import os
    import socket

    with dask_executor(n_workers=1) as ex:
        client = ex._client
        scheduler = client.cluster.scheduler
        http_port = scheduler.http_server.port
        # this process listens only on the scheduler's and the nannies' comm ports
        nannies = {_port(n.address) for n in client.cluster.workers.values()}
        assert _listening(os.getpid()) == {_port(scheduler.address), *nannies}
        with (
            pytest.raises(OSError),
            socket.create_connection(("127.0.0.1", http_port), timeout=2),
        ):
            pass  # pragma: no cover
        for address, pid in client.run(os.getpid).items():
            assert _listening(pid) == {_port(address)}


@pytest.mark.slow
def test_local_cluster_leaves_the_client_environment_as_it_was(monkeypatch):
    import os

    keys = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "OMP_NUM_THREADS")
    for key in keys:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("PYTHONHASHSEED", "1")
    with dask_executor(n_workers=1) as ex:
        ex._client.run(os.getpid)
        # Dask's nanny wrote its pre-spawn variables into this process too
        assert os.environ["MALLOC_MMAP_THRESHOLD_"] == str(2**25)
        assert os.environ["PYTHONHASHSEED"] == "6640"
    for key in keys:
        assert key not in os.environ
    assert os.environ["PYTHONHASHSEED"] == "1"


@pytest.mark.slow
def test_temporary_tls_credentials_on_a_local_cluster():
    pytest.importorskip("cryptography", reason="Security.temporary needs it")
    net, loss_fn, data = _problem()
    dirs = lnn.random_plane(net, seed=4)
    kw = {"span": 0.8, "steps": 5, "chunk": 3, "progress": False}
    here = lnn.plane(net, loss_fn, data, dirs, **kw)
    with dask_executor(n_workers=1, security=True) as ex:
        assert ex._client.scheduler.address.startswith("tls://127.0.0.1:")
        there = lnn.plane(net, loss_fn, data, dirs, executor=ex, **kw)
    np.testing.assert_allclose(there.loss, here.loss, rtol=1e-6, atol=1e-7)


# ------------------------------------------- the spec goes once per call
class _Inline(Executor):
    """Runs each job at once, in this process: the same jobs (one per chunk,
    one engine pass per chunk) as a cluster runs, without the transport."""

    def submit(self, fn, /, *args, **kwargs):
        future = Future()
        future.set_result(fn(*args, **kwargs))
        return future


@pytest.fixture(scope="module")
def cluster():
    with dask_executor(n_workers=2, threads_per_worker=1) as ex:
        yield ex


@pytest.fixture
def spec_pickles(monkeypatch):
    """Counts the times this process pickles an EngineSpec."""
    count = {"n": 0}
    original = engine.EngineSpec.__reduce_ex__

    def counting(self, protocol):
        count["n"] += 1
        return original(self, protocol)

    monkeypatch.setattr(engine.EngineSpec, "__reduce_ex__", counting)
    return count


def _plane(executor, chunk, **kw):
    net, loss_fn, data = _problem()
    dirs = lnn.random_plane(net, seed=4)
    return lnn.plane(
        net,
        loss_fn,
        data,
        dirs,
        span=0.8,
        steps=9,
        metrics="accuracy",
        chunk=chunk,
        executor=executor,
        progress=False,
        **kw,
    )


def _scheduler_keys(client):
    return client.run_on_scheduler(
        lambda dask_scheduler: [str(k) for k in dask_scheduler.tasks]
    )


def _wait_released(client, ex):
    """Wait until the scheduler forgets every task (release is asynchronous)."""
    deadline = time.monotonic() + 60
    while _scheduler_keys(client) and time.monotonic() < deadline:
        time.sleep(0.05)
    return _scheduler_keys(client)


@pytest.mark.slow
def test_spec_is_sent_once_per_call_and_released(cluster, spec_pickles):
    client = cluster._client
    pickles = {}
    for chunk in (9, 3, 1):  # 1, 9 and 81 chunk jobs
        sent = cluster.specs_sent
        spec_pickles["n"] = 0
        _plane(cluster, chunk)
        pickles[chunk] = spec_pickles["n"]
        assert cluster.specs_sent == sent + 1
        assert _wait_released(client, cluster) == []
        assert cluster._specs == {}
    # the client pickles the spec a fixed number of times per call (Dask
    # serialises a graph twice on its way out), however many chunks
    assert pickles[1] == pickles[3] == pickles[9] <= 2
    # the count counts: Dask's plain executor pickles it for every job
    spec_pickles["n"] = 0
    _plane(cluster._inner, 3)
    assert spec_pickles["n"] >= 9
    assert _wait_released(client, cluster) == []


@pytest.mark.slow
def test_each_worker_builds_one_evaluator_per_call(cluster):
    # defined here so that they travel to the workers by value
    def count_evaluators():
        from lossmap.nn import engine as eng

        if not hasattr(eng, "_built"):
            base = eng.Evaluator
            eng._built = [0]

            class Counting(base):
                def __init__(self, spec):
                    eng._built[0] += 1
                    super().__init__(spec)

            eng.Evaluator = Counting
        eng._built[0] = 0

    def evaluators_built():
        from lossmap.nn import engine as eng

        return eng._built[0]

    client = cluster._client
    _plane(cluster, 9)  # the workers import lossmap.nn.engine
    client.run(count_evaluators)
    _plane(cluster, 1)  # 81 jobs
    built = client.run(evaluators_built)
    assert len(built) == 2
    assert all(n <= 1 for n in built.values()), built
    assert sum(built.values()) >= 1


@pytest.mark.slow
@pytest.mark.parametrize("chunk", [1, 2, 4, 9])
def test_cluster_surface_equals_in_process(cluster, chunk, one_torch_thread):
    there = _plane(cluster, chunk)
    # the same jobs in this process: identical to the last bit
    inline = _plane(_Inline(), chunk)
    # grouped into full engine passes (the default): equal up to rounding,
    # since the number of points per vmap pass changes the summation
    grouped = _plane(None, chunk)
    for f in ("loss", "accuracy"):
        np.testing.assert_array_equal(there.field(f), inline.field(f))
        np.testing.assert_allclose(
            there.field(f), grouped.field(f), rtol=1e-6, atol=1e-7
        )
    assert not np.isnan(there.loss).any()


@pytest.mark.slow
def test_other_jobs_pass_through(cluster):
    # anything that is not an EngineSpec travels as Dask sends it
    assert cluster.submit(sum, [1, 2]).result() == 3
    assert list(cluster.map(pow, [2, 3], [2, 2])) == [4, 9]
    sent = cluster.specs_sent
    assert cluster.submit(len, b"abc").result() == 3
    assert cluster.specs_sent == sent


@pytest.mark.slow
def test_local_workers_leave_ctrl_c_to_the_client(cluster):
    # Ctrl-C reaches every process of the terminal's foreground group; the
    # workers printed a KeyboardInterrupt traceback each over the client's
    # "N of M points are saved" message. They ignore it; the client does not.
    def sigint_handler():
        import signal as _signal

        return repr(_signal.getsignal(_signal.SIGINT))

    handlers = cluster._client.run(sigint_handler)
    assert len(handlers) == 2
    assert set(handlers.values()) == {repr(signal.SIG_IGN)}
    assert signal.getsignal(signal.SIGINT) is not signal.SIG_IGN
