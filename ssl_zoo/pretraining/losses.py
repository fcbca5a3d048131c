"""The objectives of the pre-training methods, each a small pure function checked against its formula.

Why not lightly: it carries MoCo/SimCLR/BYOL/SwAV/Barlow losses, but each is a few lines here, while lightly
would add an install-time dependency on pytorch_lightning and hydra, imports ``torchvision.ops`` at import
time (so its import order matters against a CPU torch build), keeps the MoCo memory bank in a non-persistent
buffer (not in ``state_dict``: our resumable checkpoints need the queue) and does not carry DiRA, MAGICAL,
Chaitanya or SparK anyway. Writing them keeps one style, one autocast rule (logits in fp32) and one place
where distributed gathering happens (the methods, not the losses).

Notation: ``τ`` temperature, rows are samples, vectors are L2-normalised
inside the loss unless stated.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def info_nce(q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor, tau: float) -> torch.Tensor:
    """MoCo's InfoNCE: −mean log( e^{q·k/τ} / (e^{q·k/τ} + Σ_j e^{q·n_j/τ}) ), negatives ``queue`` (K, D)."""
    q, k, queue = (F.normalize(t.float(), dim=1) for t in (q, k, queue))
    positive = (q * k).sum(dim=1, keepdim=True)
    logits = torch.cat([positive, q @ queue.T], dim=1) / tau
    return F.cross_entropy(logits, torch.zeros(len(q), dtype=torch.long, device=q.device))


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, tau: float) -> torch.Tensor:
    """SimCLR's NT-Xent over 2N views: the other view of each sample is its positive, all else negatives."""
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)
    n = len(z1)
    sim = (z @ z.T) / tau
    sim.fill_diagonal_(float("-inf"))  # j ≠ i in the denominator
    positives = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, positives)


def byol_loss(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """BYOL's regression loss ‖p̄ − z̄‖² = 2 − 2·cos(p, z), averaged over the batch (one direction)."""
    return (2 - 2 * F.cosine_similarity(p.float(), z.float(), dim=1)).mean()


@torch.no_grad()
def sinkhorn(scores: torch.Tensor, epsilon: float, iterations: int, world_sum=None) -> torch.Tensor:
    """SwAV's codes: equipartitioned soft assignments of B samples to K prototypes (rows sum to 1).

    Args:
        scores: (B, K) prototype scores.
        world_sum: ``f(tensor) -> tensor`` summing over processes (None in a single process).
    """
    reduce = world_sum or (lambda t: t)
    q = torch.exp(scores.float() / epsilon).T  # K x B
    batch = q.shape[1] * (1 if world_sum is None else int(reduce(torch.ones((), device=q.device)).item()))
    q /= reduce(q.sum())
    k = q.shape[0]
    for _ in range(iterations):
        q /= reduce(q.sum(dim=1, keepdim=True))
        q /= k
        q /= q.sum(dim=0, keepdim=True)
        q /= batch
    return (q * batch).T


def swav_loss(scores: list[torch.Tensor], codes: list[torch.Tensor], tau: float) -> torch.Tensor:
    """Swapped prediction: mean over pairs s ≠ t of −Σ_k q_s log softmax(z_t·c/τ)."""
    terms = [-(codes[s] * F.log_softmax(scores[t].float() / tau, dim=1)).sum(dim=1).mean()
             for s in range(len(codes)) for t in range(len(scores)) if s != t]
    return torch.stack(terms).mean()


def barlow_twins_loss(z1: torch.Tensor, z2: torch.Tensor, lambd: float) -> torch.Tensor:
    """Σ_i (1 − C_ii)² + λ Σ_{i≠j} C_ij², C = standardised(z1)ᵀ standardised(z2) / N."""
    z1, z2 = (_standardise(z.float()) for z in (z1, z2))
    c = z1.T @ z2 / len(z1)
    on_diag = (torch.diagonal(c) - 1).pow(2).sum()
    off_diag = c.pow(2).sum() - torch.diagonal(c).pow(2).sum()
    return on_diag + lambd * off_diag


def _standardise(z: torch.Tensor) -> torch.Tensor:
    # BatchNorm without affine parameters, biased variance, as the reference's bn(z).
    return (z - z.mean(0)) / torch.sqrt(z.var(0, unbiased=False) + 1e-5)


def masked_contrastive(z: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor,
                       tau: float) -> torch.Tensor:
    """Mean over every positive pair (i, p) of −log( e^{s_ip} / (e^{s_ip} + Σ_{n∈neg(i)} e^{s_in}) ).

    The pair form of Chaitanya et al. (and of SupCon with a mask): ``positive``/``negative`` are (N, N) bool
    masks saying which j is a positive / negative of row i; s = cosine / τ. ``z`` is (..., N, D): leading
    dimensions are independent groups (images, for the local loss) sharing the masks.
    """
    z = F.normalize(z.float(), dim=-1)
    sim = z @ z.transpose(-1, -2) / tau
    negatives = torch.logsumexp(sim.masked_fill(~negative, float("-inf")), dim=-1, keepdim=True)
    pair = torch.logaddexp(sim, negatives) - sim
    return pair[positive.expand_as(pair)].mean()


def patch_normalised_mse(pred: torch.Tensor, image: torch.Tensor, masked: torch.Tensor, patch: int) -> torch.Tensor:
    """SparK: (1/|M|) Σ_{p∈M} mean((ŷ_p − (x_p − μ_p)/σ_p)²) over masked patches of side ``patch``.

    Args:
        pred, image: (B, C, H, W).
        masked: (B, H/patch, W/patch) bool, True where the patch was hidden from the encoder.
    """
    target = patchify(image.float(), patch)
    mean, var = target.mean(dim=-1, keepdim=True), target.var(dim=-1, keepdim=True)
    target = (target - mean) / torch.sqrt(var + 1e-6)
    per_patch = (patchify(pred.float(), patch) - target).pow(2).mean(dim=-1)
    flat = masked.flatten(1).float()
    return (per_patch * flat).sum() / flat.sum().clamp(min=1)


def patchify(x: torch.Tensor, patch: int) -> torch.Tensor:
    """(B, C, H, W) → (B, L, C·patch²), patches in row-major order."""
    b, c, h, w = x.shape
    x = x.reshape(b, c, h // patch, patch, w // patch, patch)
    return x.permute(0, 2, 4, 1, 3, 5).reshape(b, (h // patch) * (w // patch), c * patch * patch)


def lsgan_generator(fake_scores: torch.Tensor) -> torch.Tensor:
    """Least-squares GAN, generator term: MSE(D(G(x)), 1)."""
    return F.mse_loss(fake_scores.float(), torch.ones_like(fake_scores, dtype=torch.float32))


def lsgan_discriminator(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """Least-squares GAN, discriminator term: ½ (MSE(D(x), 1) + MSE(D(G(x)), 0))."""
    real = F.mse_loss(real_scores.float(), torch.ones_like(real_scores, dtype=torch.float32))
    fake = F.mse_loss(fake_scores.float(), torch.zeros_like(fake_scores, dtype=torch.float32))
    return 0.5 * (real + fake)
