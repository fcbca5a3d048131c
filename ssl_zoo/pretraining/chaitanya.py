"""Chaitanya et al. (NeurIPS 2020): partition-aware global contrast (G^D) and local contrast on decoder maps.

Global: each volume is split into ``partitions`` equal parts along the slice axis; a batch holds, for each
of its volumes, one random slice of every partition (``PartitionBatches``, the reference's
``sample_minibatch_for_global_loss_opti``). Each slice comes three times: as it is and twice cropped +
intensity-jittered. G^D (``variant = "gd"``, the reference's default): a slice's positives are every other
item of the same partition (any volume, any version); G^D- (``"gd-minus"``): only its own two other
versions. In both, the negatives are the items of other partitions.

Local: with the encoder frozen (start it from a global run with ``--init RUN/model``), the first
``decoder_blocks`` decoder blocks + a 1x1 head map two intensity-only views of an image (so positions
align); each of 13 fixed regions is positive with itself in the other view and negative with its 5
nearest regions in both views.

Differences from the TF reference: a torchvision-keyed ResNet encoder and smp decoder replace the 6-level
custom U-Net (so the result is a registry model folder); pairs are averaged rather than divided by
3/4 × batch; partitions work for any count (the reference's G^D- negative pruning hard-codes a stride of 4).
"""

from __future__ import annotations

import itertools

import torch
from torch import nn

from torch.utils.data import Sampler

from ..errors import TrainingDataError
from . import losses
from .base import Method, MethodSettings, UNetMethod, require_choice
from .medical_augment import fixed_crop, intensity
from .parts import Normalise, backbone, decoder_until, gather_no_grad, gather_with_grad, mlp, unet


class ChaitanyaGlobal(Method):
    name = "chaitanya-global"
    paper = "Contrastive learning of global and local features for medical image segmentation (arXiv:2006.10511)"
    needs_volumes = True
    defaults = {"dim": 128, "tau": 0.1, "partitions": 4, "crop_fraction": 100 / 192, "variant": "gd"}

    def __init__(self, settings: MethodSettings):
        super().__init__(settings)
        require_choice(self.name, "variant", self.opts["variant"], ("gd", "gd-minus"))
        self.backbone = backbone(settings.arch)
        self.head = mlp([self.backbone.num_features, 1024, self.opts["dim"]])
        self.normalise = Normalise(settings.mean, settings.std)

    def encoder(self):
        return self.backbone

    def views(self, image, meta):
        size, fraction = self.settings.image_size, self.opts["crop_fraction"]
        return {"view0": image, **{f"view{i}": intensity(fixed_crop(image, size, fraction)) for i in (1, 2)}}

    def batch_sampler(self, samples, per_rank, *, seed, epoch, skip=0, rank=0, world=1):
        """One random slice per partition of each volume in the batch (the reference's sampling)."""
        return PartitionBatches(samples, per_rank, self.opts["partitions"], seed=seed, epoch=epoch, skip=skip,
                                rank=rank, world=world)

    def forward(self, batch, progress):
        x = torch.cat([batch[f"view{i}"] for i in range(3)])
        z = gather_with_grad(self.head(self.backbone(self.normalise(x))))
        part = (batch["position"] * self.opts["partitions"]).long().clamp(max=self.opts["partitions"] - 1)
        labels = gather_no_grad(part.repeat(3))
        positive, negative = partition_masks(labels, self.opts["variant"])
        loss = losses.masked_contrastive(z, positive, negative, self.opts["tau"])
        return loss, {"global": loss.detach()}


def partition_masks(partition: torch.Tensor, variant: str = "gd") -> tuple[torch.Tensor, torch.Tensor]:
    """(positive, negative) masks over [originals, aug1, aug2] of a batch, ``partition`` its labels (3B,).

    G^D: positives share the partition (not the item itself); G^D-: positives are the item's own other
    versions (same slice, positions i, i ± B, i ± 2B). Negatives: items of another partition.
    """
    n = len(partition)
    eye = torch.eye(n, dtype=torch.bool, device=partition.device)
    same = partition[:, None] == partition[None, :]
    if variant == "gd":
        return same & ~eye, ~same
    slot = torch.arange(n, device=partition.device) % (n // 3)
    return (slot[:, None] == slot[None, :]) & ~eye, ~same


class PartitionBatches(Sampler):
    """Batches of ``per_rank // partitions`` volumes, each giving one random slice of every partition.

    A volume's slices fall in partition ⌊position · partitions⌋. Volumes are shuffled per (seed, epoch); an
    epoch uses each volume once (the last incomplete global batch is dropped). Keys are ``(index, seed)``.

    Raises:
        TrainingDataError: A batch that is not a multiple of ``partitions``, a volume with an empty
            partition, or fewer volumes than one global batch needs.
    """

    def __init__(self, samples: list, per_rank: int, partitions: int, *, seed: int, epoch: int, skip: int = 0,
                 rank: int = 0, world: int = 1):
        if per_rank % partitions:
            raise TrainingDataError(f"chaitanya-global takes one slice per partition per volume: the batch per "
                                    f"process ({per_rank}) must be a multiple of partitions={partitions}")
        self.per_volume = per_rank // partitions
        self.slices = _slices_by_partition(samples, partitions)
        self.global_volumes = self.per_volume * world
        if len(self.slices) < self.global_volumes:
            raise TrainingDataError(f"{len(self.slices)} volumes are fewer than one batch of {self.global_volumes}"
                                    f" volumes x {partitions} partitions: lower --batch-size")
        self.seed, self.epoch, self.skip, self.rank = seed, epoch, skip, rank

    def __len__(self) -> int:
        return len(self.slices) // self.global_volumes - self.skip

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        volumes = torch.randperm(len(self.slices), generator=generator).tolist()
        picks = [[int(part[torch.randint(len(part), (), generator=generator)]) for part in self.slices[v]]
                 for v in volumes]
        for b in range(self.skip, len(self.slices) // self.global_volumes):
            start = b * self.global_volumes + self.rank * self.per_volume
            keys = [i for v in range(start, start + self.per_volume) for i in picks[v]]
            yield [(i, (self.seed * 1_000_003 + self.epoch) * 10_000_019 + b * 1000 + k) for k, i in enumerate(keys)]


def _slices_by_partition(samples: list, partitions: int) -> list[list[torch.Tensor]]:
    """Per volume (in order of first appearance), per partition, the sample indices of its slices."""
    by_volume: dict[int, list[list[int]]] = {}
    for index, sample in enumerate(samples):
        part = min(partitions - 1, int(sample.position * partitions))
        by_volume.setdefault(sample.volume, [[] for _ in range(partitions)])[part].append(index)
    for volume, parts in by_volume.items():
        if not all(parts):
            raise TrainingDataError(f"volume {volume} has fewer slices than partitions={partitions}: "
                                    "lower -o partitions=N or drop the volume")
    return [[torch.tensor(p) for p in parts] for parts in by_volume.values()]


def region_grid() -> list[tuple[float, float]]:
    """The 13 region centres as fractions of the map: corners, edge mid-points, centre, 4 quarter points."""
    edge = [1 / 6, 1 / 2, 5 / 6]
    return [*itertools.product(edge, edge), *itertools.product([1 / 3, 2 / 3], [1 / 3, 2 / 3])]


def nearest_regions(centres: list[tuple[float, float]], count: int) -> torch.Tensor:
    """(R, R) bool: region j is one of the ``count`` nearest other regions of region i."""
    c = torch.tensor(centres)
    dist = torch.cdist(c, c) + torch.eye(len(c)) * 1e9
    nearest = dist.argsort(dim=1)[:, :count]
    return torch.zeros(len(c), len(c), dtype=torch.bool).scatter_(1, nearest, True)


class ChaitanyaLocal(UNetMethod):
    name = "chaitanya-local"
    paper = ChaitanyaGlobal.paper
    unused_parameters = True  # the decoder blocks past ``decoder_blocks`` and the head get no gradient
    defaults = {"dim": 128, "tau": 0.1, "decoder_blocks": 3, "negatives": 5, "region_size": 3}

    def __init__(self, settings: MethodSettings):
        super().__init__(settings)
        self.net = unet(settings.arch, out_channels=1)
        for p in self.net.encoder.parameters():
            p.requires_grad_(False)  # the encoder comes from the global stage and stays as it is
        self.net.encoder.eval()
        width = self.net.decoder.blocks[self.opts["decoder_blocks"] - 1].conv2[0].out_channels
        self.local_head = nn.Sequential(nn.Conv2d(width, width, 1, bias=False), nn.BatchNorm2d(width),
                                        nn.ReLU(inplace=True), nn.Conv2d(width, width, 1))
        self.region_proj = nn.Linear(width * self.opts["region_size"] ** 2, self.opts["dim"], bias=False)
        self.normalise = Normalise(settings.mean, settings.std)
        self.centres = region_grid()
        self.register_buffer("neighbours", nearest_regions(self.centres, self.opts["negatives"]), persistent=False)

    def train(self, mode: bool = True):
        super().train(mode)
        self.net.encoder.eval()  # frozen: its BN statistics stay those of the global stage
        return self

    def views(self, image, meta):
        return {"view0": intensity(image), "view1": intensity(image)}

    def forward(self, batch, progress):
        x = torch.cat([batch["view0"], batch["view1"]])
        with torch.no_grad():
            features = self.net.encoder(self.normalise(x))
        maps = self.local_head(decoder_until(self.net.decoder, features, self.opts["decoder_blocks"]))
        regions = self.region_embeddings(maps)  # (2B, R, dim)
        n = len(batch["view0"])
        z = torch.cat([regions[:n], regions[n:]], dim=1)  # per image: R regions of view 0, then of view 1
        positive, negative = self.region_masks(z.device)
        loss = losses.masked_contrastive(z, positive, negative, self.opts["tau"])
        return loss, {"local": loss.detach()}

    def region_embeddings(self, maps: torch.Tensor) -> torch.Tensor:
        size = self.opts["region_size"]
        h, w = maps.shape[2:]
        crops = []
        for fy, fx in self.centres:
            y = min(max(0, round(fy * h) - size // 2), h - size)
            x = min(max(0, round(fx * w) - size // 2), w - size)
            crops.append(maps[:, :, y:y + size, x:x + size].flatten(1))
        return self.region_proj(torch.stack(crops, dim=1))

    def region_masks(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Over [view-0 regions, view-1 regions]: positive = same region in the other view."""
        r = len(self.centres)
        eye = torch.eye(r, dtype=torch.bool, device=device)
        zero = torch.zeros_like(eye)
        positive = torch.cat([torch.cat([zero, eye], 1), torch.cat([eye, zero], 1)])
        near = self.neighbours.to(device)
        negative = torch.cat([torch.cat([near, near], 1), torch.cat([near, near], 1)])
        return positive, negative


METHODS = {m.name: m for m in (ChaitanyaGlobal, ChaitanyaLocal)}
