"""Dask executor: a plane computed on a 2-worker local cluster equals the
in-process one."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("distributed")

import lossmap.nn as lnn  # noqa: E402
from lossmap.distributed import dask_executor  # noqa: E402


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
        env = ex._client.run(lambda: __import__("os").environ["MALLOC_TRIM_THRESHOLD_"])
        assert set(env.values()) == {str(2**30)}
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
