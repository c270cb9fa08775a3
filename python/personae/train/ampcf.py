"""AMP-CF (Barkan, Fuchs, Caciularu, Koenigstein, RecSys 2020, arXiv 2010.07042) in PyTorch.

Model (as in the issue; choices where the paper is silent are marked *):

- User u has K free persona vectors ``p_uk`` (d-dim; a ``users x K x d`` embedding table, no
  encoder), items have ``q_j`` (d) and a bias ``b_j``.
- Attention for item j: ``alpha_ujk = softmax_k(cos(p_uk A_u, q_j A_v) / tau)``, with learned
  projections ``A_u, A_v`` (``d x a``, bias-free, applied on the right; a = d by default) and a
  temperature ``tau`` (* default 0.2: cosine lies in [-1, 1], so tau = 1 gives nearly uniform
  attention).
- Score ``s_uj = <sum_k alpha_ujk p_uk, q_j> + b_j``.
- Loss (the authors' later code, UMUAI 2023): ``alpha * CE(1 positive vs n_neg sampled
  negatives) + (1 - alpha) * (lambda_p * H(attention on the positive) - lambda_n * mean
  H(attention on the negatives))``; K = 3, d = 64, alpha = 0.5, lambda_p = lambda_n = 0.005,
  Adam 1e-3, 256 (user, positive) pairs per batch, 4 negatives.
- Negatives are drawn from the item popularity raised to ``neg_power`` (* default 0.75, the
  word2vec smoothing; 1.0 = plain popularity); collisions with the user's own positives are
  rare and not filtered (*). With ``logq=True`` (*) every logit of the cross-entropy, the
  positive's included, is corrected by ``-log(n_neg * Q(j))`` as in TensorFlow's
  ``sampled_softmax_loss``, so that the sampled loss estimates the full softmax and popular
  items are not pushed down just for being sampled often; scoring is unchanged.
- ``l2`` (*): an L2 penalty on the embeddings a batch touches (its users' personas and its
  items' vectors), ``l2 * mean over the batch of (||P_u||^2 + sum_j ||q_j||^2)``, the usual
  per-batch regularisation of embedding models (the paper is silent; free per-user personas
  overfit quickly without it).
- Initialisation (*): N(0, 0.1) for personas and items, zero biases, identity-plus-noise
  projections so training starts from cosine(p, q).
- One epoch is one pass over all training (user, item) pairs in random order. Early stopping on
  full-ranking validation NDCG@eval_k over the training users (history masked), when a held-out
  matrix is given.
- Fold-in (:func:`fold_in`): personas of new users are optimised with the same loss for a few
  Adam steps while the item side stays frozen; nothing else changes, so no retrain is needed.
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
    TrainConfig,
    TrainResult,
    check_train,
    pick_device,
    seed_everything,
    validation_ndcg,
)


@dataclass
class AMPCFConfig:
    """Architecture and loss of AMP-CF (defaults from the authors' later code)."""

    n_personas: int = 3
    dim: int = 64
    att_dim: int | None = None  # None: same as dim
    tau: float = 0.2
    alpha: float = 0.5
    lambda_p: float = 0.005
    lambda_n: float = 0.005
    n_neg: int = 4
    neg_power: float = 0.75
    logq: bool = False
    l2: float = 0.0
    init_std: float = 0.1


class AMPCFNet(nn.Module):
    """The AMP-CF network: persona table, item embeddings and biases, and the two attention
    projections (see the module docstring for the model)."""

    def __init__(
        self,
        n_users: int,
        n_items: int,
        n_personas: int = 3,
        dim: int = 64,
        att_dim: int | None = None,
        tau: float = 0.2,
        init_std: float = 0.1,
    ):
        super().__init__()
        a = att_dim or dim
        self.n_users, self.n_items, self.k, self.dim, self.att_dim = (
            n_users,
            n_items,
            n_personas,
            dim,
            a,
        )
        self.tau = float(tau)
        self.personas = nn.Parameter(torch.randn(n_users, n_personas, dim) * init_std)
        self.item_emb = nn.Parameter(torch.randn(n_items, dim) * init_std)
        self.item_bias = nn.Parameter(torch.zeros(n_items))
        eye = torch.eye(dim, a)
        self.proj_user = nn.Parameter(eye + torch.randn(dim, a) * 0.01)
        self.proj_item = nn.Parameter(eye + torch.randn(dim, a) * 0.01)

    def forward_personas(
        self, p: torch.Tensor, items: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Scores and attention of personas ``p [B, K, d]`` for ``items [B, n]``:
        ``([B, n], [B, n, K])``."""
        q = self.item_emb[items]  # [B, n, d]
        pa = F.normalize(p @ self.proj_user, dim=-1, eps=1e-12)  # [B, K, a]
        qa = F.normalize(q @ self.proj_item, dim=-1, eps=1e-12)  # [B, n, a]
        att = torch.softmax(torch.einsum("bna,bka->bnk", qa, pa) / self.tau, dim=-1)
        dots = torch.einsum("bnd,bkd->bnk", q, p)
        return (att * dots).sum(-1) + self.item_bias[items], att

    def forward(self, users: torch.Tensor, items: torch.Tensor):
        """Scores and attention of training users ``users [B]`` for ``items [B, n]``."""
        return self.forward_personas(self.personas[users], items)

    def loss_personas(self, p, items, cfg: AMPCFConfig, log_q=None) -> torch.Tensor:
        """The AMP-CF loss for ``items [B, 1 + n_neg]`` (positive first), averaged over B.
        `log_q`: per-item ``log(n_neg * Q(j))`` to subtract from the logits (``cfg.logq``)."""
        s, att = self.forward_personas(p, items)
        if log_q is not None:
            s = s - log_q[items]
        ce = -F.log_softmax(s, dim=1)[:, 0]
        ent = -(att * torch.log(att.clamp_min(1e-12))).sum(-1)  # [B, n]
        reg = cfg.lambda_p * ent[:, 0] - cfg.lambda_n * ent[:, 1:].mean(1)
        loss = (cfg.alpha * ce + (1 - cfg.alpha) * reg).mean()
        if cfg.l2 > 0:
            sq = p.pow(2).sum((1, 2)) + self.item_emb[items].pow(2).sum((1, 2))
            loss = loss + cfg.l2 * sq.mean()
        return loss

    @torch.no_grad()
    def score_all(self, p: torch.Tensor, item_chunk: int = 8192) -> torch.Tensor:
        """Dense scores ``[B, n_items]`` of personas ``p [B, K, d]`` (materialises B x K x
        chunk: for validation and tests)."""
        pa = F.normalize(p @ self.proj_user, dim=-1, eps=1e-12)
        qa_all = F.normalize(self.item_emb @ self.proj_item, dim=-1, eps=1e-12)
        out = []
        for s in range(0, self.n_items, item_chunk):
            q, qa = self.item_emb[s : s + item_chunk], qa_all[s : s + item_chunk]
            att = torch.softmax(torch.einsum("bka,na->bnk", pa, qa) / self.tau, dim=-1)
            dots = torch.einsum("bkd,nd->bnk", p, q)
            out.append((att * dots).sum(-1) + self.item_bias[s : s + item_chunk])
        return torch.cat(out, dim=1)

    def export(self) -> dict[str, np.ndarray]:
        """Tensors in the layout the Rust core reads (see rust/core/src/ampcf.rs)."""

        def np_(t):
            return t.detach().float().cpu().numpy()

        return {
            "personas": np_(self.personas),
            "item_emb": np_(self.item_emb),
            "item_bias": np_(self.item_bias),
            "proj_user": np_(self.proj_user),
            "proj_item": np_(self.proj_item),
        }


class NegativeSampler:
    """Draws item indices with probability proportional to popularity ** power."""

    def __init__(self, counts: np.ndarray, power: float, device: torch.device):
        w = np.asarray(counts, dtype=np.float64) ** power
        if w.sum() <= 0:
            w = np.ones_like(w)
        self.probs = torch.as_tensor(w / w.sum(), dtype=torch.float32, device=device)

    def log_q(self, n_neg: int) -> torch.Tensor:
        """``log(n_neg * Q(j))`` per item: the sampled-softmax correction."""
        return torch.log(self.probs.clamp_min(1e-30) * n_neg)

    def __call__(self, shape: tuple[int, int], gen: torch.Generator) -> torch.Tensor:
        flat = torch.multinomial(self.probs, shape[0] * shape[1], replacement=True, generator=gen)
        return flat.view(shape)


def _pairs(m: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    return np.repeat(np.arange(m.shape[0]), np.diff(m.indptr)), m.indices.astype(np.int64)


def train_ampcf(
    train: sp.csr_matrix,
    model_cfg: AMPCFConfig | None = None,
    cfg: TrainConfig | None = None,
    validation: sp.csr_matrix | None = None,
    show_progress: bool = True,
    on_improve=None,
    on_epoch=None,
) -> TrainResult:
    """Trains AMP-CF on the (user, item) pairs of `train` (users x items, implicit feedback).

    Args:
        validation: held-out items of the *same* users (same shape as `train`), for early
            stopping on full-ranking NDCG@cfg.eval_k; without it the last state is kept.
        on_improve: called as ``on_improve(net, epoch, ndcg)`` at each new best.
        on_epoch: called as ``on_epoch(record, seconds)`` after every epoch.
    """
    from tqdm.auto import tqdm

    mc = model_cfg or AMPCFConfig()
    cfg = cfg or TrainConfig(batch_size=256)
    train = check_train(train)
    if validation is not None:
        if not sp.issparse(validation) or validation.shape != train.shape:
            raise ValueError(
                f"validation must be a sparse matrix of shape {train.shape} (held-out items of "
                "the training users)"
            )
        validation = sp.csr_matrix(validation)
    seed_everything(cfg.seed)
    device = pick_device(cfg.device)
    net = AMPCFNet(
        train.shape[0], train.shape[1], mc.n_personas, mc.dim, mc.att_dim, mc.tau, mc.init_std
    ).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator(device=device).manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    sampler = NegativeSampler(
        np.bincount(train.indices, minlength=train.shape[1]), mc.neg_power, device
    )
    log_q = sampler.log_q(mc.n_neg) if mc.logq else None
    pu, pi = _pairs(train)
    pu_t, pi_t = torch.as_tensor(pu, device=device), torch.as_tensor(pi, device=device)
    steps = -(-len(pu) // cfg.batch_size)
    bar = tqdm(
        total=cfg.epochs * steps,
        disable=not show_progress,
        unit="batch",
        desc="AMP-CF",
        dynamic_ncols=True,
    )
    validate = None
    if validation is not None:
        # Only users with held-out items are scored, by their persona rows; their training
        # items are masked. Sliced once, not every epoch.
        val_users = np.flatnonzero(np.diff(validation.indptr) > 0)
        val_in, val_out = train[val_users], validation[val_users]

        def score(rows, _batch):
            return net.score_all(net.personas[torch.as_tensor(val_users[rows], device=device)])

        def validate():
            return validation_ndcg(score, val_in, val_out, cfg.eval_k, device, batch_size=256)

    log = EpochLog(net, cfg, validate, on_improve, bar, device, on_epoch)
    try:
        for epoch in range(cfg.epochs):
            net.train()
            perm = torch.as_tensor(rng.permutation(len(pu)), device=device)
            total = 0.0
            for s in range(steps):
                sel = perm[s * cfg.batch_size : (s + 1) * cfg.batch_size]
                u, pos = pu_t[sel], pi_t[sel]
                items = torch.cat([pos[:, None], sampler((len(sel), mc.n_neg), gen)], dim=1)
                loss = net.loss_personas(net.personas[u], items, mc, log_q)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += loss.item() * len(sel)
                bar.update(1)
            if log.end({"epoch": epoch, "loss": total / len(pu)}):
                break
    finally:
        bar.close()
    return log.result()


def net_from_tensors(t: dict[str, np.ndarray], tau: float, device="cpu") -> AMPCFNet:
    """An :class:`AMPCFNet` holding exported tensors (e.g. ``personae.AMPCF._core.tensors()``)."""
    u, k, d = t["personas"].shape
    net = AMPCFNet(max(u, 1), t["item_emb"].shape[0], k, d, t["proj_user"].shape[1], tau)
    with torch.no_grad():
        net.personas = nn.Parameter(torch.as_tensor(np.asarray(t["personas"])).float())
        for name in ("item_emb", "item_bias", "proj_user", "proj_item"):
            getattr(net, name).copy_(torch.as_tensor(np.asarray(t[name])))
    return net.to(device).eval()


def fold_in(
    net: AMPCFNet,
    user_items: sp.csr_matrix,
    mc: AMPCFConfig,
    steps: int = 100,
    lr: float = 0.05,
    seed: int = 0,
    return_history: bool = False,
):
    """Personas ``[B, K, d]`` (float32 numpy) for the rows of `user_items`, optimised with the
    training loss (every history item as a positive, each step with fresh negatives) while the
    item side of `net` stays frozen. Rows with no items get the mean training persona set.

    With ``return_history=True`` also returns the loss after each step (on the same positives,
    fixed negatives), which should decrease."""
    user_items = sp.csr_matrix(user_items)
    b = user_items.shape[0]
    dev = net.item_emb.device
    gen = torch.Generator(device=dev).manual_seed(seed)
    torch.manual_seed(seed)
    with torch.no_grad():
        counts = np.bincount(user_items.indices, minlength=net.n_items) + 1.0
    sampler = NegativeSampler(counts, mc.neg_power, dev)
    log_q = sampler.log_q(mc.n_neg) if mc.logq else None
    # Start from the mean persona set plus a little noise, so personas can specialise.
    base = net.personas.detach().mean(0, keepdim=True)
    p = base.expand(b, -1, -1) + torch.randn(b, net.k, net.dim, device=dev) * mc.init_std * 0.1
    p = nn.Parameter(p.clone())
    pu, pi = _pairs(user_items)
    hist: list[float] = []
    if len(pu):
        pu_t, pi_t = torch.as_tensor(pu, device=dev), torch.as_tensor(pi, device=dev)
        opt = torch.optim.Adam([p], lr=lr)
        # Freeze the item side for the duration, then restore each flag as it was (a net kept
        # for fold-in only stays frozen, and concurrent fold-ins never unfreeze it).
        was = [prm.requires_grad for prm in net.parameters()]
        for prm in net.parameters():
            prm.requires_grad_(False)
        fixed_neg = sampler((len(pu), mc.n_neg), gen)
        try:
            for _ in range(steps):
                items = torch.cat([pi_t[:, None], sampler((len(pu), mc.n_neg), gen)], dim=1)
                loss = net.loss_personas(p[pu_t], items, mc, log_q)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if return_history:
                    with torch.no_grad():
                        fixed = torch.cat([pi_t[:, None], fixed_neg], dim=1)
                        hist.append(float(net.loss_personas(p[pu_t], fixed, mc, log_q)))
        finally:
            for prm, flag in zip(net.parameters(), was, strict=True):
                prm.requires_grad_(flag)
    out = p.detach().float().cpu().numpy()
    return (out, hist) if return_history else out
