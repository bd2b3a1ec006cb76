"""Demo section: research models through the batch contract.

``run(out)`` shows two models that need more than ``(inputs, targets)``:

* a small transformer (a HuggingFace BERT built from a config with random
  weights, no download) trained for a moment on a synthetic task (do low
  tokens outnumber high ones in a padded sequence?) and evaluated on
  mappings of ``input_ids``, ``attention_mask`` and ``labels`` with its own
  ``output.loss``. Two planes
  side by side: one moving only the attention weights, one only the
  feed-forward weights (``params=``);
* a physics-informed MLP for ``u'(x) = cos(x)`` with ``u(0) = 0``: a loss of
  two named terms on different rows of one batch (measured values on a few
  data rows, the equation's residual by ``torch.autograd.grad`` on
  collocation rows), one panel per term beside the weighted total.

Every value is exact whatever the tile size (the terms are carried over tiles
as ``(sum, count)``); the stores are saved beside the figures in
``out/research/``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import torch

import lossmap.nn as lnn
from lossmap import io
from lossmap.plot import PlaneDisplay

DPI = 110
SEED = 0
STEPS = 13
VOCAB, LENGTH, N_SEQ = 20, 12, 384
ATTENTION = "*.attention.*"
FEED_FORWARD = ["*.intermediate.dense.*", "*.layer.?.output.dense.*"]


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


# ------------------------------------------------------------ transformer
def _token_task(n: int, seed: int) -> dict[str, torch.Tensor]:
    """Padded sequences; the label says whether low tokens (2-10) outnumber
    high ones (11-19)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(2, VOCAB, (n, LENGTH), generator=g)
    lengths = torch.randint(4, LENGTH + 1, (n,), generator=g)
    mask = (torch.arange(LENGTH)[None] < lengths[:, None]).long()
    ids = ids * mask  # 0 is the padding token
    low = ((ids >= 2) & (ids <= 10)).sum(dim=1)
    high = (ids >= 11).sum(dim=1)
    labels = (low > high).long()
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def _transformer() -> torch.nn.Module:
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(SEED)
    cfg = BertConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=LENGTH,
        num_labels=2,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    return BertForSequenceClassification(cfg)


def _train_transformer(model: torch.nn.Module, data: dict) -> None:
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    g = torch.Generator().manual_seed(SEED)
    for _ in range(120):
        idx = torch.randint(0, N_SEQ, (64,), generator=g)
        loss = model(**{k: v[idx] for k, v in data.items()}).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()


def _transformer_planes(out: Path) -> list[tuple[Path, str]]:
    model = _transformer()
    train = _token_task(N_SEQ, seed=1)
    _train_transformer(model, train)
    test = _token_task(192, seed=2)
    surfaces = {}
    for name, sel in (("attention", ATTENTION), ("feed-forward", FEED_FORWARD)):
        dirs = lnn.random_plane(model, seed=SEED, params=sel)
        store = out / f"transformer-{name}.zarr"
        shutil.rmtree(store, ignore_errors=True)
        surfaces[name] = lnn.plane(
            model,
            lnn.OUTPUT_LOSS,  # the model's own loss: the batch holds `labels`
            test,
            dirs,
            span=2.0,
            steps=STEPS,
            params=sel,
            metrics="accuracy",  # read from output.logits and batch["labels"]
            store=store,
            progress=False,
        )
    fig, axes = plt.subplots(
        2, 2, figsize=(11.2, 9.2), layout="constrained", squeeze=False
    )
    for row, (name, s) in enumerate(surfaces.items()):
        PlaneDisplay(s, fields=["loss", "accuracy"]).plot(list(axes[row]))
        sel = s.metadata["params"]
        words = f"{sel['n_tensors']} tensors, {sel['n_values']:,} values"
        axes[row][0].set_title(f"loss, {name} weights only ({words})", fontsize=9)
        axes[row][1].set_title(f"accuracy, {name} weights only", fontsize=9)
    fig.suptitle("A small transformer (padded sequences, attention mask)")
    path = _save(fig, out / "transformer_attention_vs_ffn.png")
    return [
        (
            path,
            "transformer planes: attention weights vs feed-forward weights "
            "(loss and accuracy, output.loss of a padded, masked batch)",
        ),
        *(
            (out / f"transformer-{n}.zarr", f"store: transformer plane, {n} weights")
            for n in surfaces
        ),
    ]


# ------------------------------------------------------------------ PINN
class _Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = torch.nn.Sequential(
            torch.nn.Linear(1, 24), torch.nn.Tanh(), torch.nn.Linear(24, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def _pinn_batch() -> dict[str, torch.Tensor]:
    """Data rows (a few noisy values of sin) and collocation rows, mixed."""
    g = torch.Generator().manual_seed(SEED)
    x_data = torch.rand(8, 1, generator=g) * 6.0
    u_data = torch.sin(x_data) + 0.02 * torch.randn(8, 1, generator=g)
    x_col = torch.linspace(0.0, 6.0, 56).reshape(-1, 1)
    x = torch.cat([x_data, x_col])
    u = torch.cat([u_data, torch.zeros(56, 1)])
    is_data = torch.cat(
        [torch.ones(8, dtype=torch.bool), torch.zeros(56, dtype=torch.bool)]
    )
    order = torch.randperm(64, generator=g)
    return {"x": x[order], "u": u[order], "is_data": is_data[order]}


def data_term(output: torch.Tensor, batch: dict) -> tuple:
    """Mean squared error on the data rows only."""
    return lnn.sum_count((output - batch["u"]).squeeze(-1) ** 2, batch["is_data"])


def residual_term(output: torch.Tensor, batch: dict) -> tuple:
    """Mean squared residual of u' = cos(x) on the collocation rows."""
    (du,) = torch.autograd.grad(output.sum(), batch["x"], create_graph=True)
    r = (du - torch.cos(batch["x"])).squeeze(-1)
    return lnn.sum_count(r**2, ~batch["is_data"])


def _call(model, batch: dict) -> torch.Tensor:
    return model(batch["x"].requires_grad_(True))


def _pinn(out: Path) -> list[tuple[Path, str]]:
    torch.manual_seed(SEED)
    model, batch = _Net(), _pinn_batch()
    terms = {"data": data_term, "residual": residual_term}
    weights = {"residual": 0.5}
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(400):
        x = batch["x"].clone().requires_grad_(True)
        u = model(x)
        b = {**batch, "x": x}
        s_d, c_d = data_term(u, b)
        s_r, c_r = residual_term(u, b)
        loss = s_d / c_d + 0.5 * s_r / c_r
        opt.zero_grad()
        loss.backward()
        opt.step()
    store = out / "pinn-terms.zarr"
    shutil.rmtree(store, ignore_errors=True)
    s = lnn.plane(
        model,
        terms,
        batch,
        lnn.random_plane(model, seed=SEED),
        weights=weights,
        call=_call,
        span=1.0,
        steps=21,
        batch_size=16,  # any tile size gives the same numbers
        store=store,
        progress=False,
    )
    disp = PlaneDisplay(s, fields=["loss", "data", "residual"]).plot()
    titles = [
        "total: data + 0.5 × residual",
        "data term (8 rows)",
        "residual term (56 rows)",
    ]
    for ax, t in zip(disp.axes_, titles):
        ax.set_title(t, fontsize=10)
    disp.figure_.suptitle("Physics-informed MLP, u' = cos(x): one panel per term")
    path = _save(disp.figure_, out / "pinn_terms.png")
    return [
        (path, "physics-informed loss: weighted total and each term on its own rows"),
        (store, "store: the PINN plane with fields loss, data, residual"),
    ]


def run(out: Path) -> list[tuple[Path, str]]:
    out = Path(out) / "research"
    out.mkdir(parents=True, exist_ok=True)
    files = _transformer_planes(out)
    files += _pinn(out)
    # the stores open again as surfaces with every field
    assert set(io.load(out / "pinn-terms.zarr").field_names) >= {"data", "residual"}
    return files
