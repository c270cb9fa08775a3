"""Mult-VAE (Liang, Krishnan, Hoffman, Jebara, WWW 2018) in PyTorch.

As in the paper and its reference code (dawenl/vae_cf): the input row is L2-normalised, then
dropout (0.5) is applied; encoder I -> 600 -> 2 x 200 (mean, log-variance) and decoder
200 -> 600 -> I with tanh; multinomial log-likelihood; KL weight beta annealed linearly from 0
(by 1 / total_anneal_steps per update) up to anneal_cap; Adam. The first layer is an
EmbeddingBag over the batch's non-zeros (a gather-sum), so no dense batch x items input exists.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from personae.train.loop import (
    EpochLog,
    SparseBatch,
    TrainConfig,
    TrainResult,
    check_train,
    pick_device,
    seed_everything,
    sparse_batch,
    validation_ndcg,
)


@dataclass
class MultVAEConfig:
    """Architecture and annealing of Mult-VAE (the paper's, but beta = 0.5 from the start:
    see :class:`personae.MultVAE`)."""

    hidden: int = 600
    latent: int = 200
    dropout: float = 0.5
    anneal_cap: float = 0.5
    total_anneal_steps: int = 1


class MultVAENet(nn.Module):
    """The Mult-VAE network [I-hidden-latent-hidden-I] with a sparse (EmbeddingBag) first layer."""

    def __init__(self, n_items: int, hidden: int = 600, latent: int = 200, dropout: float = 0.5):
        super().__init__()
        self.n_items, self.hidden, self.latent, self.dropout = n_items, hidden, latent, dropout
        self.enc_item = nn.EmbeddingBag(n_items, hidden, mode="sum")
        self.enc_b = nn.Parameter(torch.zeros(hidden))
        self.mu_logvar = nn.Linear(hidden, 2 * latent)
        self.dec = nn.Linear(latent, hidden)
        self.out = nn.Linear(hidden, n_items)
        # The reference code: Xavier-uniform weights, N(0, 0.001) biases.
        for w in (self.enc_item.weight, self.mu_logvar.weight, self.dec.weight, self.out.weight):
            nn.init.xavier_uniform_(w)
        for b in (self.enc_b, self.mu_logvar.bias, self.dec.bias, self.out.bias):
            nn.init.normal_(b, 0.0, 0.001)

    def encode(self, b: SparseBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance of q(z | x) for a sparse batch (input L2-normalised, dropout)."""
        # L2 normalisation that is exact for any finite weight scale: divide by the row's
        # largest weight first (float32 squares overflow above ~1e19 and vanish below ~1e-23).
        dev = b.values.device
        mx = torch.zeros(b.size, device=dev).scatter_reduce_(
            0, b.rows, b.values.abs(), "amax", include_self=False
        )
        v = b.values / mx.clamp_min(torch.finfo(b.values.dtype).tiny)[b.rows]
        sq = torch.zeros(b.size, device=dev).index_add_(0, b.rows, v**2)
        v = v / sq.sqrt().clamp_min(1e-12)[b.rows]
        v = F.dropout(v, self.dropout, self.training)
        h = torch.tanh(self.enc_item(b.indices, b.offsets, per_sample_weights=v) + self.enc_b)
        mu, logvar = self.mu_logvar(h).chunk(2, dim=-1)
        return mu, logvar

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Logits over all items for latent codes `z`."""
        return self.out(torch.tanh(self.dec(z)))

    def forward(self, b: SparseBatch):
        """(logits, mu, logvar); z is sampled in training mode, the mean otherwise."""
        mu, logvar = self.encode(b)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if self.training else mu
        return self.decode(z), mu, logvar

    def loss(self, b: SparseBatch, beta: float) -> tuple[torch.Tensor, torch.Tensor]:
        """(negative ELBO with KL weight beta, negative log-likelihood), averaged per user."""
        logits, mu, logvar = self(b)
        logp = F.log_softmax(logits, dim=1)
        nll = -(logp[b.rows, b.indices] * b.values).sum() / b.size
        kl = (0.5 * (-logvar + logvar.exp() + mu**2 - 1).sum(dim=1)).mean()
        return nll + beta * kl, nll

    def scores(self, b: SparseBatch) -> torch.Tensor:
        """Decoder logits of the mean latent (eval mode): the inference score."""
        return self.decode(self.encode(b)[0])

    def load_tensors(self, t: dict[str, np.ndarray]) -> MultVAENet:
        """Copies tensors in :meth:`export`'s layout (a fitted model's ``tensors()``) into this
        network; the inverse of :meth:`export`. Returns self."""
        z = self.latent
        with torch.no_grad():
            self.enc_item.weight.copy_(torch.from_numpy(t["enc_item"]))
            self.enc_b.copy_(torch.from_numpy(t["enc_b"]))
            self.mu_logvar.weight[:z].copy_(torch.from_numpy(t["mu_w"].T))
            self.mu_logvar.bias[:z].copy_(torch.from_numpy(t["mu_b"]))
            self.dec.weight.copy_(torch.from_numpy(t["dec_w"].T))
            self.dec.bias.copy_(torch.from_numpy(t["dec_b"]))
            self.out.weight.copy_(torch.from_numpy(t["dec_item"]))
            self.out.bias.copy_(torch.from_numpy(t["dec_item_b"]))
        return self

    def export(self) -> dict[str, np.ndarray]:
        """Tensors in the item-major layout the Rust core reads (see rust/core/src/multvae.rs)."""
        z = self.latent

        def np_(t):
            return t.detach().float().cpu().numpy()

        return {
            "enc_item": np_(self.enc_item.weight),
            "enc_b": np_(self.enc_b),
            "mu_w": np_(self.mu_logvar.weight[:z].T),
            "mu_b": np_(self.mu_logvar.bias[:z]),
            "dec_w": np_(self.dec.weight.T),
            "dec_b": np_(self.dec.bias),
            "dec_item": np_(self.out.weight),
            "dec_item_b": np_(self.out.bias),
        }


def train_multvae(
    train: sp.csr_matrix,
    model_cfg: MultVAEConfig | None = None,
    cfg: TrainConfig | None = None,
    validation: tuple[sp.csr_matrix, sp.csr_matrix] | None = None,
    show_progress: bool = True,
    on_improve=None,
    on_epoch=None,
) -> TrainResult:
    """Trains Mult-VAE on the rows of `train` (users x items).

    Args:
        validation: (fold-in rows, held-out rows) for early stopping on NDCG@cfg.eval_k; without
            it the model trains for cfg.epochs and the last state is kept.
        on_improve: called as ``on_improve(net, epoch, ndcg)`` at each new best, e.g. to write
            a checkpoint so that a crash loses nothing.
        on_epoch: called as ``on_epoch(record, seconds)`` after every epoch.
    """
    from tqdm.auto import tqdm

    mc = model_cfg or MultVAEConfig()
    cfg = cfg or TrainConfig()
    train = check_train(train)
    seed_everything(cfg.seed)
    device = pick_device(cfg.device)
    net = MultVAENet(train.shape[1], mc.hidden, mc.latent, mc.dropout).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    rng = np.random.default_rng(cfg.seed)
    n_users = train.shape[0]
    steps_per_epoch = -(-n_users // cfg.batch_size)
    update = 0
    bar = tqdm(
        total=cfg.epochs * steps_per_epoch,
        disable=not show_progress,
        unit="batch",
        desc="Mult-VAE",
        dynamic_ncols=True,
    )
    validate = None
    if validation is not None:

        def validate():
            return validation_ndcg(
                lambda rows, b: net.scores(b), validation[0], validation[1], cfg.eval_k, device
            )

    log = EpochLog(net, cfg, validate, on_improve, bar, device, on_epoch)
    try:
        for epoch in range(cfg.epochs):
            net.train()
            perm = rng.permutation(n_users)
            total, total_nll = 0.0, 0.0
            for s in range(steps_per_epoch):
                rows = perm[s * cfg.batch_size : (s + 1) * cfg.batch_size]
                b = sparse_batch(train, rows, device)
                beta = (
                    min(mc.anneal_cap, update / mc.total_anneal_steps)
                    if mc.total_anneal_steps > 0
                    else mc.anneal_cap
                )
                loss, nll = net.loss(b, beta)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                update += 1
                total += loss.item() * len(rows)
                total_nll += nll.item() * len(rows)
                bar.update(1)
            rec = {
                "epoch": epoch,
                "loss": total / n_users,
                "nll": total_nll / n_users,
                "beta": beta,
            }
            if log.end(rec):
                break
    finally:
        bar.close()
    return log.result()
