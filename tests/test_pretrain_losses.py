"""Each pre-training loss against its formula, written out term by term on small hand-made inputs."""

from __future__ import annotations

import math

import pytest
import torch

from ssl_zoo.pretraining import losses, medical_augment
from ssl_zoo.pretraining.chaitanya import nearest_regions, partition_masks, region_grid


def unit(v: torch.Tensor) -> torch.Tensor:
    return v / v.norm()


@pytest.fixture
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def test_info_nce_is_the_moco_formula(gen):
    q, k, queue, tau = torch.randn(3, 4, generator=gen), torch.randn(3, 4, generator=gen), torch.randn(5, 4, generator=gen), 0.2
    total = 0.0
    for i in range(3):
        pos = math.exp(float(unit(q[i]) @ unit(k[i])) / tau)
        neg = sum(math.exp(float(unit(q[i]) @ unit(n)) / tau) for n in queue)
        total += -math.log(pos / (pos + neg))
    assert losses.info_nce(q, k, queue, tau).item() == pytest.approx(total / 3, rel=1e-5)


def test_nt_xent_is_the_simclr_formula(gen):
    z1, z2, tau = torch.randn(3, 4, generator=gen), torch.randn(3, 4, generator=gen), 0.1
    z = [unit(v) for v in torch.cat([z1, z2])]
    total = 0.0
    for i in range(6):
        partner = (i + 3) % 6
        sims = {j: math.exp(float(z[i] @ z[j]) / tau) for j in range(6) if j != i}
        total += -math.log(sims[partner] / sum(sims.values()))
    assert losses.nt_xent(z1, z2, tau).item() == pytest.approx(total / 6, rel=1e-5)


def test_byol_loss_is_the_squared_distance_of_unit_vectors(gen):
    p, z = torch.randn(4, 5, generator=gen), torch.randn(4, 5, generator=gen)
    expected = sum(float((unit(a) - unit(b)).pow(2).sum()) for a, b in zip(p, z)) / 4
    assert losses.byol_loss(p, z).item() == pytest.approx(expected, rel=1e-5)


def test_sinkhorn_gives_equipartitioned_assignments(gen):
    scores = torch.randn(12, 3, generator=gen)
    codes = losses.sinkhorn(scores, epsilon=0.5, iterations=200)
    assert torch.allclose(codes.sum(dim=1), torch.ones(12), atol=1e-5)  # each sample: a distribution
    assert torch.allclose(codes.sum(dim=0), torch.full((3,), 4.0), atol=1e-3)  # each prototype: B/K samples
    assert codes.argmax(1).tolist() != [0] * 12


def test_swav_loss_is_the_swapped_prediction(gen):
    scores = [torch.randn(2, 3, generator=gen) for _ in range(3)]
    codes = [torch.softmax(torch.randn(2, 3, generator=gen), 1) for _ in range(2)]
    tau = 0.1

    def ce(q, s):
        return -sum(float(q[b, k]) * math.log(float(torch.softmax(s[b] / tau, 0)[k]))
                    for b in range(2) for k in range(3)) / 2

    pairs = [ce(codes[s], scores[t]) for s in range(2) for t in range(3) if s != t]
    assert losses.swav_loss(scores, codes, tau).item() == pytest.approx(sum(pairs) / len(pairs), rel=1e-5)


def test_barlow_twins_is_the_cross_correlation_formula(gen):
    z1, z2, lambd = torch.randn(6, 3, generator=gen), torch.randn(6, 3, generator=gen), 0.0051

    def standard(z, j):
        col = z[:, j]
        return (col - col.mean()) / math.sqrt(float(col.var(unbiased=False)) + 1e-5)

    c = [[float((standard(z1, i) * standard(z2, j)).sum()) / 6 for j in range(3)] for i in range(3)]
    expected = sum((1 - c[i][i]) ** 2 for i in range(3)) + lambd * sum(c[i][j] ** 2 for i in range(3)
                                                                        for j in range(3) if i != j)
    assert losses.barlow_twins_loss(z1, z2, lambd).item() == pytest.approx(expected, rel=1e-4)


def test_masked_contrastive_is_the_pairwise_formula(gen):
    z, tau = torch.randn(4, 3, generator=gen), 0.1
    positive = torch.tensor([[0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0]], dtype=torch.bool)
    negative = torch.tensor([[0, 0, 1, 1], [0, 0, 1, 0], [1, 1, 0, 0], [1, 0, 0, 0]], dtype=torch.bool)
    s = [[float(unit(z[i]) @ unit(z[j])) / tau for j in range(4)] for i in range(4)]
    terms = [-math.log(math.exp(s[i][p]) / (math.exp(s[i][p]) + sum(math.exp(s[i][n]) for n in range(4)
                                                                      if negative[i, n])))
             for i in range(4) for p in range(4) if positive[i, p]]
    assert losses.masked_contrastive(z, positive, negative, tau).item() == pytest.approx(sum(terms) / 4, rel=1e-5)
    batched = losses.masked_contrastive(torch.stack([z, z]), positive, negative, tau)
    assert batched.item() == pytest.approx(sum(terms) / 4, rel=1e-5)


def test_patch_normalised_mse_counts_only_masked_patches(gen):
    image, pred = torch.randn(1, 1, 4, 4, generator=gen), torch.randn(1, 1, 4, 4, generator=gen)
    masked = torch.tensor([[[True, False], [False, True]]])
    expected = 0.0
    for py, px in [(0, 0), (1, 1)]:
        target = image[0, 0, 2 * py:2 * py + 2, 2 * px:2 * px + 2].flatten()
        target = (target - target.mean()) / torch.sqrt(target.var() + 1e-6)  # unbiased, as SparK's .var()
        expected += float((pred[0, 0, 2 * py:2 * py + 2, 2 * px:2 * px + 2].flatten() - target).pow(2).mean())
    assert losses.patch_normalised_mse(pred, image, masked, 2).item() == pytest.approx(expected / 2, rel=1e-5)


def test_lsgan_terms():
    real, fake = torch.tensor([1.0, 0.5]), torch.tensor([0.0, 0.5])
    assert losses.lsgan_generator(fake).item() == pytest.approx((1 + 0.25) / 2)
    assert losses.lsgan_discriminator(real, fake).item() == pytest.approx(0.5 * (0.25 / 2 + 0.25 / 2))


def test_partition_masks_follow_gd():
    positive, negative = partition_masks(torch.tensor([0, 1, 0, 1, 2]))
    assert positive[0].tolist() == [False, False, True, False, False]  # same partition, another slice
    assert negative[0].tolist() == [False, True, False, True, True]  # other partitions only
    assert not (positive & negative).any()


def test_local_regions_and_their_negatives():
    centres = region_grid()
    near = nearest_regions(centres, 5)
    assert len(centres) == 13 and near.sum(1).tolist() == [5] * 13 and not near.diagonal().any()
    centre = centres.index((0.5, 0.5))
    assert set(near[centre].nonzero().flatten().tolist()) >= {centres.index(c) for c in
                                                              [(1 / 3, 1 / 3), (1 / 3, 2 / 3), (2 / 3, 1 / 3), (2 / 3, 2 / 3)]}


def test_proxy_transforms():
    torch.manual_seed(0)
    image = torch.linspace(0, 1, 64).view(1, 8, 8)
    curved = medical_augment.magical_bezier(image)
    assert curved.min() >= 0 and curved.max() <= 1
    diffs = curved.flatten().diff()
    assert (diffs >= -1e-6).all() or (diffs <= 1e-6).all()  # a monotone curve, increasing or inverted
    masked = medical_augment.block_mask(torch.ones(1, 16, 16), 0.25, grid=4)
    assert (masked == 0).float().mean().item() == pytest.approx(0.25)
