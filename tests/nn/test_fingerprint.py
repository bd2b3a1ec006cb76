"""Data fingerprints ignore row order; a shuffled DataLoader store resumes exactly."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("zarr")

from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

import lossmap.nn as lnn  # noqa: E402
from lossmap.io import GridStore  # noqa: E402
from lossmap.nn.batch import materialise  # noqa: E402


def _data(n=60):
    g = torch.Generator().manual_seed(3)
    return torch.randn(n, 5, generator=g), torch.randint(0, 3, (n,), generator=g)


def data_fingerprint(batch):
    return materialise(batch).fingerprint()


def test_fingerprint_ignores_order_but_not_content():
    x, y = _data()
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(1))
    fp = data_fingerprint((x, y))
    assert data_fingerprint((x[perm], y[perm])) == fp
    for changed in (
        (x.clone().index_put_((torch.tensor([4]),), -x[4]), y),  # one row negated
        (x, torch.where(torch.arange(len(y)) == 7, (y + 1) % 3, y)),  # one label
        (x[1:], y[1:]),  # one row fewer
        (x.double(), y),  # another dtype
        (torch.cat([x, x[:1]]), torch.cat([y, y[:1]])),  # a duplicated row
    ):
        assert data_fingerprint(changed) != fp
    # a single sign bit of a float64 entry changes it too
    xd = x.double()
    flipped = xd.clone()
    flipped[0, 0] = -flipped[0, 0]
    assert data_fingerprint((xd, y)) != data_fingerprint((flipped, y))


def test_a_loader_is_read_in_the_same_order_whatever_the_shuffle():
    x, y = _data()
    reads = []
    for seed in (1, 2):
        g = torch.Generator().manual_seed(seed)
        loader = DataLoader(
            TensorDataset(x, y), batch_size=7, shuffle=True, generator=g
        )
        reads.append(materialise(loader))
    a, b = (r.blocks[0].leaves for r in reads)
    for u, v in zip(a, b):
        torch.testing.assert_close(u, v, rtol=0, atol=0)
    assert reads[0].fingerprint() == data_fingerprint((x, y))
    # the rows are the data set's rows, each once
    assert sorted(map(tuple, a[0].tolist())) == sorted(map(tuple, x.tolist()))


def test_shuffled_dataloader_store_resumes_bit_identical(tmp_path):
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)
    )
    x, y = _data(200)
    dirs = lnn.random_directions(net, 2, seed=5)
    kw = {"steps": 7, "chunk": 3, "progress": False, "batch_size": 32}

    def loader(seed):
        g = torch.Generator().manual_seed(seed)
        return DataLoader(TensorDataset(x, y), batch_size=17, shuffle=True, generator=g)

    full = lnn.plane(net, torch.nn.functional.cross_entropy, loader(1), dirs, **kw)
    path = tmp_path / "p.zarr"
    lnn.plane(net, torch.nn.functional.cross_entropy, loader(2), dirs, store=path, **kw)
    store = GridStore.attach(path)
    store.forget(store.chunk_indices()[::2])  # as if interrupted
    again = lnn.plane(
        net, torch.nn.functional.cross_entropy, loader(3), dirs, store=path, **kw
    )
    np.testing.assert_array_equal(again.loss, full.loss)
    assert again.metadata["fingerprint"]["data"] == data_fingerprint((x, y))
