"""The batch contract (lossmap.nn.batch): structures, reading, exact sums."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lossmap.nn import batch as B


def _xy(n=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, generator=g), torch.randint(0, 2, (n,), generator=g)


def test_structures_kinds_and_describe():
    x, y = _xy()
    assert B.materialise((x, y)).kind == "pair"
    assert B.materialise(x).kind == "tensor"
    m = B.materialise({"input_ids": y[:, None].repeat(1, 4), "labels": y})
    assert m.kind == "mapping"
    want = {"input_ids": "int64[n, 4]", "labels": "int64[n]"}
    assert m.describe()["structure"] == want
    assert B.materialise((x, x, y)).kind == "sequence"
    # nested: (dict of inputs, targets) is a pair
    assert B.materialise(({"a": x}, y)).kind == "pair"


def test_loader_is_read_once_and_fingerprint_ignores_order():
    x, y = _xy(23)
    ds = torch.utils.data.TensorDataset(x, y)
    whole = B.materialise((x, y))
    loader = torch.utils.data.DataLoader(ds, batch_size=5, shuffle=True)
    read = B.materialise(loader)
    assert read.n == 23
    assert len(read.blocks) == 1
    assert read.fingerprint() == whole.fingerprint()
    perm = torch.randperm(23)
    assert B.materialise((x[perm], y[perm])).fingerprint() == whole.fingerprint()
    changed = x.clone()
    changed[3, 1] += 1e-6
    assert B.materialise((changed, y)).fingerprint() != whole.fingerprint()


def test_loader_with_per_batch_padding_keeps_blocks():
    batches = [
        {"ids": torch.zeros(4, 5, dtype=torch.long), "y": torch.zeros(4)},
        {"ids": torch.zeros(3, 7, dtype=torch.long), "y": torch.ones(3)},
    ]
    data = B.materialise(batches)
    assert [b.n for b in data.blocks] == [4, 3]
    tiles = data.tiles(3)
    assert [t.n for t in tiles] == [3, 1, 3]  # tiles never cross a block


def test_tiles_cover_every_row_of_every_leaf():
    x, y = _xy(10)
    data = B.materialise({"x": x, "y": y, "w": torch.arange(10.0)})
    for rows in (1, 3, 7, 10, 64):
        tiles = data.tiles(rows)
        assert sum(t.n for t in tiles) == 10
        got = torch.cat([t.value["w"] for t in tiles])
        torch.testing.assert_close(got, torch.arange(10.0))


@pytest.mark.parametrize(
    ("data", "error", "match"),
    [
        ((torch.zeros(3, 2), torch.zeros(4)), ValueError, r"leading \(row\) dim"),
        (({"a": torch.zeros(3)}, "labels"), TypeError, r"`data\[1\]` is a str"),
        ({1: torch.zeros(3)}, TypeError, "keys must be strings"),
        ([], ValueError, "holds no tensors"),
        (iter([]), ValueError, "yielded no batches"),
        (iter([1, 2]), TypeError, "batch 0 is a int"),
        ((torch.zeros(0, 2),), ValueError, "holds no samples"),
        (torch.tensor(1.0), ValueError, "leading sample dimension"),
        ("text", TypeError, "got str"),
    ],
)
def test_materialise_errors(data, error, match):
    with pytest.raises(error, match=match):
        B.materialise(data)


def test_loader_batches_must_share_a_structure():
    with pytest.raises(TypeError, match="same structure"):
        B.materialise([{"a": torch.zeros(2)}, {"b": torch.zeros(2)}])


def _check(objective, model, data):
    return B.check_tiling(
        objective,
        lambda b: objective.read(objective.forward(model, b), b),
        data,
        torch.float32,
    )


def test_call_conventions():
    x, y = _xy()
    seen = {}

    class Probe(torch.nn.Module):
        def forward(self, *args, **kwargs):
            seen["args"], seen["kwargs"] = len(args), sorted(kwargs)
            return torch.zeros(args[0].shape[0] if args else len(kwargs["a"]), 2)

    obj = B.Objective.build(F.cross_entropy, targets=-1)
    b = B.Batch.of({"a": x, "b": x, "t": y})
    obj.forward(Probe(), b)
    assert seen == {"args": 0, "kwargs": ["a", "b", "t"]}
    b = B.Batch.of((x, x, y))
    obj.forward(Probe(), b)
    assert seen == {"args": 3, "kwargs": []}
    pair = B.Batch.of((x, y))
    B.Objective.build(F.cross_entropy).forward(Probe(), pair)
    assert seen == {"args": 1, "kwargs": []}
    custom = B.Objective.build(F.cross_entropy, call=lambda m, batch: m(batch[0]))
    custom.forward(Probe(), pair)
    assert seen == {"args": 1, "kwargs": []}


def test_exact_sums_for_sum_mask_and_row_subsets():
    x, y = _xy(37, seed=1)
    lin = torch.nn.Linear(3, 2)
    data = B.materialise((x, y))
    with torch.no_grad():
        out = lin(x)
    ref_sum = float(F.cross_entropy(out, y, reduction="sum"))
    obj = B.Objective.build(
        lambda o, t: F.cross_entropy(o, t, reduction="sum"), reduction="sum"
    )
    run = lambda b: obj.read(lin(b.value[0]), b)  # noqa: E731
    for rows in (1, 7, 64):
        got = B.aggregate(obj, [run(t) for t in data.tiles(rows)])["loss"]
        assert got == pytest.approx(ref_sum, rel=1e-5)
    # per-row values: the mean over every row
    per_row = B.Objective.build(lambda o, t: F.cross_entropy(o, t, reduction="none"))
    for rows in (1, 7, 64):
        tiles = data.tiles(rows)
        got = B.aggregate(per_row, [per_row.read(lin(t.value[0]), t) for t in tiles])
        assert got["loss"] == pytest.approx(float(F.cross_entropy(out, y)), rel=1e-5)
    # a term on a subset of the rows, marked by a column of the batch
    keep = torch.arange(37) % 3 == 0
    rows_data = B.materialise({"x": x, "y": y, "keep": keep})
    sub = B.Objective.build(
        lambda o, b: B.sum_count(
            F.cross_entropy(o, b["y"], reduction="none"), b["keep"]
        ),
        call=lambda m, b: m(b["x"]),
    )
    ref = float(F.cross_entropy(out[keep], y[keep]))
    for rows in (1, 7, 64):
        tiles = rows_data.tiles(rows)
        got = B.aggregate(sub, [sub.read(lin(t.value["x"]), t) for t in tiles])
        assert got["loss"] == pytest.approx(ref, rel=1e-5)


def test_check_tiling_refuses_a_sum_read_as_a_mean():
    x, y = _xy(20)
    lin = torch.nn.Linear(3, 2)
    obj = B.Objective.build(lambda o, t: F.cross_entropy(o, t, reduction="sum"))
    with pytest.raises(ValueError, match="depends on how the data is tiled"):
        _check(obj, lin, B.materialise((x, y)))
    ok = B.Objective.build(F.cross_entropy, metrics="accuracy")
    vals = _check(ok, lin, B.materialise((x, y)))
    with torch.no_grad():  # the check runs on the first CHECK_ROWS rows
        out, head = lin(x[: B.CHECK_ROWS]), y[: B.CHECK_ROWS]
    assert vals["loss"] == pytest.approx(float(F.cross_entropy(out, head)), rel=1e-6)
    acc = float((out.argmax(1) == head).float().mean())
    assert vals["accuracy"] == pytest.approx(acc)


def test_broadcasting_pitfall_is_refused():
    x = torch.randn(8, 3)
    y = torch.randn(8)
    lin = torch.nn.Linear(3, 1)
    obj = B.Objective.build(F.mse_loss)
    with pytest.raises(ValueError, match=r"broadcast to \(8, 8\)"):
        _check(obj, lin, B.materialise((x, y)))


def test_token_accuracy_ignores_padding_labels():
    logits = torch.tensor([[[2.0, 0.0], [0.0, 2.0]], [[2.0, 0.0], [2.0, 0.0]]])
    labels = torch.tensor([[0, 0], [0, -100]])
    assert float(B.accuracy(logits, labels)) == pytest.approx(2 / 3)


def test_token_cross_entropy_matches_torch_on_the_whole_data():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 5, 4, generator=g)
    labels = torch.randint(0, 4, (6, 5), generator=g)
    labels[2:, 3:] = -100
    loss = B.token_cross_entropy(shift=True)
    obj = B.Objective.build(loss, targets="labels")
    data = B.materialise({"logits": logits, "labels": labels})
    ref = F.cross_entropy(
        logits[:, :-1].reshape(-1, 4), labels[:, 1:].reshape(-1), ignore_index=-100
    )
    for rows in (1, 4, 6):
        tiles = data.tiles(rows)
        got = B.aggregate(obj, [obj.read(t.value["logits"], t) for t in tiles])
        assert got["loss"] == pytest.approx(float(ref), rel=1e-6)
    assert np.isfinite(got["loss"])
