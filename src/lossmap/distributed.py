"""Scale-out: a Dask cluster behind a standard ``concurrent.futures`` executor.

Every lossmap computation that can run in parallel (``lossmap.nn.plane``,
``lossmap.nn.line``) takes ``executor=``, any
:class:`concurrent.futures.Executor`; the default is to compute in-process.
:func:`dask_executor` gives one backed by Dask, either a local cluster of
worker processes on this machine or an existing cluster by address::

    from lossmap.distributed import dask_executor
    from lossmap.nn import plane

    if __name__ == "__main__":  # worker processes re-import the script
        with dask_executor(n_workers=4) as ex:
            surface = plane(model, loss_fn, data, dirs, executor=ex, store="p.zarr")

Where chunks are written
    Workers only compute: each returns its chunk's values to the client, and
    the client (the process that called ``plane``) writes every chunk to the
    ``store=`` as its result arrives. The store therefore needs to be on a disk
    the client can write; workers never open it. A killed worker loses only
    the chunks it was computing: Dask runs them again on another worker (the
    local cluster's nanny also starts a replacement process), and the surface
    is the same to the last bit. If the client dies, rerunning the same call
    with the same store computes only the missing (or damaged) chunks.

What travels
    Each chunk is one job, ``run_chunk(spec, index, coeffs)``. The spec (the
    model, data, centre and directions) goes to the cluster once per call, as
    a task of its own whose result every job of the call takes; each worker
    receives it once and builds its evaluator once, then reuses both for its
    later chunks. When the call's last job is done the spec is released. If
    every worker holding it dies, the scheduler computes the spec task again
    (it keeps it, unlike data sent with ``Client.scatter``).

Choosing a chunk size
    ``chunk=`` is grid points per axis (a plane's chunk holds ``chunk²``
    points). A chunk job costs a few milliseconds beyond its compute (4-9 ms
    of wall time per job on a 2-worker local cluster, measured in
    ``benchmarks/README.md``, "Dask"; more across a network), and each call
    pays once for sending the spec and building the evaluators. With
    ``t_point`` the seconds per grid point on one worker thread (time a small
    plane in-process with one torch thread) and ``t_chunk`` the overhead per
    job, chunks of at least
    ``10 · n_workers · t_chunk / t_point`` points keep the overhead under
    about 10 %; keep also at least 4 chunks per worker (so all stay busy to
    the end and a lost worker costs little) and, with a store, chunks of at
    most a few minutes (a chunk is the unit of resumption).

Security
    A local cluster listens on 127.0.0.1 only, and with ``dashboard=False`` (the
    default) no HTTP server is left listening at all. A Dask scheduler runs
    any pickled function it is sent, so a scheduler shared between machines
    must not listen on plain ``tcp://`` on a network others can reach. Use TLS
    with mutual authentication and pass the credentials through
    ``security=``::

        from distributed.security import Security

        sec = Security(
            tls_ca_file="ca.pem",
            tls_client_cert="client.pem",
            tls_client_key="client.key",
            require_encryption=True,
        )
        with dask_executor("tls://scheduler.lab:8786", security=sec) as ex:
            ...

    (start the scheduler and workers with matching ``--tls-ca-file``,
    ``--tls-cert`` and ``--tls-key``). ``security=True`` gives a local cluster
    temporary self-signed credentials, so even loopback traffic is encrypted.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future
from contextlib import contextmanager
from typing import Any

from lossmap._optional import require
from lossmap._validation import check_int

__all__ = ["dask_executor"]

# glibc returns freed memory to the OS at this threshold. Dask's default
# (64 KiB) makes every large tensor free/allocate a round trip to the kernel;
# measured on a 4.7 M-parameter MLP it raised the time per chunk by ~25 %.
_MALLOC_TRIM_THRESHOLD = 2**30
# Setting any malloc threshold turns off glibc's sliding mmap threshold, so
# every allocation above 128 KiB (each weight and activation tensor) became a
# fresh mmap, page-faulted in and unmapped again: a worker evaluated a W1-like
# plane 1.5-1.7x slower than the same evaluator in the client process. Fixed at
# the ceiling the sliding threshold reaches by itself (32 MiB on 64-bit).
_MALLOC_MMAP_THRESHOLD = 32 * 2**20


def _hold(spec: Any) -> Any:
    """The task that keeps one call's evaluation spec on the cluster."""
    return spec


class _ClusterExecutor(Executor):
    """Dask's ``ClientExecutor`` that ships each evaluation spec once per call.

    A chunk job is ``run_chunk(spec, index, coeffs)``. Sent as it is, every
    job would carry the whole :class:`~lossmap.nn.engine.EngineSpec` (model,
    data, centre, directions). Here the first job of a call puts the spec on
    the cluster as a task of its own (``_hold(spec)``), and every job of the
    call takes that task's result as its argument: the client pickles and
    sends the spec once, each worker receives it once (from the scheduler or
    a peer) and passes the same object to every chunk, so its cached
    evaluator (keyed by ``spec.token``) is reused. Unlike scattered data, the
    spec task can be recomputed if every worker holding it dies. The spec is
    released when the last job that uses it has finished.
    """

    def __init__(self, client: Any) -> None:
        self._client = client
        self._inner = client.get_executor()
        self._lock = threading.Lock()
        #: spec token -> [the spec task's Dask future, jobs not yet finished]
        self._specs: dict[str, list[Any]] = {}
        #: specs sent to the cluster so far (one per call; read by the tests)
        self.specs_sent = 0

    def _share(self, value: Any, tokens: list[str]) -> Any:
        engine = sys.modules.get("lossmap.nn.engine")
        if engine is None or not isinstance(value, engine.EngineSpec):
            return value
        token = value.token
        with self._lock:
            entry = self._specs.get(token)
            if entry is None:
                with warnings.catch_warnings():
                    # the spec goes into the graph once, as Dask advises
                    warnings.filterwarnings("ignore", "Sending large graph")
                    held = self._client.submit(
                        _hold, value, key=f"lossmap-spec-{token}-{self.specs_sent}"
                    )
                entry = self._specs[token] = [held, 0]
                self.specs_sent += 1
            entry[1] += 1
        tokens.append(token)
        return entry[0]

    def _release(self, token: str) -> None:
        with self._lock:
            entry = self._specs.get(token)
            if entry is not None:
                entry[1] -= 1
                if entry[1] <= 0:  # dropping the future releases the task
                    del self._specs[token]

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        tokens: list[str] = []
        try:
            args = tuple(self._share(a, tokens) for a in args)
            kwargs = {k: self._share(v, tokens) for k, v in kwargs.items()}
            future = self._inner.submit(fn, *args, **kwargs)
        except BaseException:
            for token in tokens:
                self._release(token)
            raise
        for token in tokens:
            future.add_done_callback(lambda _f, token=token: self._release(token))
        return future

    def shutdown(self, wait: bool = True, **kwargs: Any) -> None:
        self._inner.shutdown(wait=wait)
        with self._lock:
            self._specs.clear()


def _require_dask() -> Any:
    return (
        require("dask", extra="dist", what="dask_executor"),
        require("distributed", extra="dist", what="dask_executor"),
    )


def _torch_threads_plugin(threads: int) -> Any:
    from distributed import WorkerPlugin

    class TorchThreads(WorkerPlugin):
        """Give torch in each worker ``threads`` intra-op threads."""

        name = "lossmap-torch-threads"

        def __init__(self, n: int) -> None:
            self.n = n

        def setup(self, worker: Any) -> None:
            import torch

            torch.set_num_threads(self.n)

    return TorchThreads(threads)


def _no_http_plugin() -> Any:
    from distributed import WorkerPlugin

    class NoHTTP(WorkerPlugin):
        """Stop the worker's HTTP server (health and metrics routes)."""

        name = "lossmap-no-http"

        def setup(self, worker: Any) -> None:
            server = getattr(worker, "http_server", None)
            if server is not None:
                server.stop()

    return NoHTTP()


def _check_security(security: Any, address: str | None) -> Any:
    if security is None:
        return None
    if security is True:
        if address is not None:
            raise ValueError(
                "`security=True` (temporary credentials) works only for a local "
                "cluster; for a cluster at `address` pass a "
                "distributed.security.Security with its TLS files"
            )
        try:
            import cryptography  # noqa: F401
        except ImportError:
            raise ImportError(
                "`security=True` makes temporary TLS credentials with the "
                "cryptography package: pip install cryptography"
            ) from None
        return True
    from distributed.security import Security

    if not isinstance(security, Security):
        raise TypeError(
            f"`security` must be None, True or a distributed.security.Security, got "
            f"{type(security).__name__}"
        )
    return security


@contextmanager
def _environ_restored(keys: set[str]) -> Iterator[None]:
    """Put ``keys`` of this process's environment back as they were.

    A local cluster's nannies write their pre-spawn variables (the malloc
    thresholds, ``OMP_NUM_THREADS``, ``PYTHONHASHSEED``) into the client's
    own environment before starting a worker; left there, every process the
    user starts afterwards would inherit them (one OpenMP thread, say).
    """
    before = {k: os.environ.get(k) for k in keys}
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextmanager
def _sigint_ignored_by_children() -> Iterator[None]:
    """Start processes that ignore SIGINT (Ctrl-C), this one's handler kept.

    Ctrl-C in a terminal goes to every process of the foreground group, so
    a local cluster's worker processes got it too: each printed a
    ``KeyboardInterrupt`` traceback (some 70 lines for 2 workers) over the
    run's own message. The client alone handles Ctrl-C; it closes the
    cluster, which stops the workers. An ignored signal stays ignored in a
    spawned child (and Python leaves it so). Only possible in the main thread.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)


@contextmanager
def dask_executor(
    address: str | None = None,
    *,
    n_workers: int = 2,
    threads_per_worker: int = 1,
    processes: bool = True,
    dashboard: bool = False,
    security: Any = None,
) -> Iterator[Executor]:
    """A ``concurrent.futures.Executor`` running on a Dask cluster.

    Parameters
    ----------
    address : str, optional
        Scheduler address of a running cluster (``"tcp://host:8786"``). By
        default a local cluster is started for the duration of the ``with``
        block; it listens on 127.0.0.1 only.
    n_workers : int, default 2
        Workers of the local cluster (ignored with ``address``).
    threads_per_worker : int, default 1
        Threads per local worker; also the number of torch threads each
        worker uses (set on every worker, including ones that join later).
    processes : bool, default True
        Workers as separate processes (the usual choice: torch releases the
        GIL only partly). Scripts that start process workers need an
        ``if __name__ == "__main__":`` guard.
    dashboard : bool, default False
        Serve Dask's diagnostic dashboard on 127.0.0.1, on a free port (needs
        bokeh). When False, the local scheduler and workers keep no HTTP
        server at all (Dask otherwise serves health and metrics routes on
        8787 even without a dashboard).
    security : None, True or distributed.security.Security, optional
        TLS settings for talking to the cluster (see "Security" above);
        ``True`` gives a local cluster temporary self-signed credentials.

    Yields
    ------
    concurrent.futures.Executor
        ``submit``/``map`` run functions on the cluster. Closed, with the
        local cluster, when the block ends.
    """
    n_workers = check_int("n_workers", n_workers, minimum=1)
    threads_per_worker = check_int("threads_per_worker", threads_per_worker, minimum=1)
    if address is not None and not isinstance(address, str):
        raise TypeError(
            f"`address` must be a scheduler address string, got {address!r}"
        )
    if not isinstance(dashboard, bool):
        raise TypeError(f"`dashboard` must be True or False, got {dashboard!r}")
    security = _check_security(security, address)
    dask, distributed = _require_dask()
    threads = str(threads_per_worker)
    environ = {
        "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": (
            _MALLOC_TRIM_THRESHOLD
        ),
        "distributed.nanny.pre-spawn-environ.MALLOC_MMAP_THRESHOLD_": (
            _MALLOC_MMAP_THRESHOLD
        ),
        "distributed.nanny.pre-spawn-environ.OMP_NUM_THREADS": threads,
        "distributed.nanny.pre-spawn-environ.MKL_NUM_THREADS": threads,
        "distributed.nanny.pre-spawn-environ.OPENBLAS_NUM_THREADS": threads,
    }
    if not dashboard:
        environ["distributed.scheduler.http.routes"] = []
        environ["distributed.worker.http.routes"] = []
    with (
        dask.config.set(environ),
        _environ_restored(
            {*dask.config.get("distributed.nanny.pre-spawn-environ"), "PYTHONHASHSEED"}
            if address is None
            else set()
        ),
    ):
        cluster = None
        if address is None:
            with _sigint_ignored_by_children():
                cluster = distributed.LocalCluster(
                    n_workers=n_workers,
                    threads_per_worker=threads_per_worker,
                    processes=processes,
                    host="127.0.0.1",
                    # never Dask's default :8787, even for the moment before the
                    # HTTP server is stopped below
                    dashboard_address="127.0.0.1:0",
                    silence_logs=40,
                    security=security,
                )
            if not dashboard:
                cluster.scheduler.http_server.stop()
        try:
            client = distributed.Client(
                cluster if cluster is not None else address,
                security=security if cluster is None else None,
            )
            try:
                client.register_plugin(_torch_threads_plugin(threads_per_worker))
                if cluster is not None and not dashboard:
                    client.register_plugin(_no_http_plugin())
                executor = _ClusterExecutor(client)
                try:
                    yield executor
                finally:
                    executor.shutdown(wait=False)
            finally:
                client.close()
        finally:
            if cluster is not None:
                cluster.close()
