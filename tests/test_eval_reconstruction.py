"""Deep-image-prior reconstruction and LPIPS: the distance computed by hand from the fixture weights (AlexNet
stage by stage with torch's functional ops), the weights pulled from the loopback mirror and hash-checked, the
skip network's size counted from upstream's configuration, and a short reconstruction of a real fundus photograph.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from ssl_zoo.registry import metric_entries
from ssl_zoo.store.hashes import sha256_file

from .fixtures.perceptual import build_lpips
from .loopback import LoopbackServer
from .test_eval_support import r18_folder  # noqa: F401  (fixture)

SHIFT, SCALE = [-0.030, -0.088, -0.188], [0.458, 0.448, 0.450]


@pytest.fixture(scope="session")
def lpips_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("lpips_mirror")
    paths = build_lpips("alex", root)
    server = LoopbackServer(root)
    yield server, paths
    server.close()


@pytest.fixture
def lpips_mirror(lpips_files, monkeypatch):
    """The fixture files on a loopback mirror, the entry pinned to their own sha256."""
    server, paths = lpips_files
    monkeypatch.setenv("SSL_ZOO_MIRROR", server.url)
    entry = metric_entries()["lpips-alex"]
    sources = tuple(dataclasses.replace(s, sha256=sha256_file(p), sha256_prefix=None, size=None)
                    for s, p in zip(entry.sources, (paths["trunk"], paths["lin"])))
    monkeypatch.setitem(metric_entries(), "lpips-alex", dataclasses.replace(entry, sources=sources))
    return paths


def hand_lpips(trunk, lins, a, b):
    """LPIPS v0.1 with AlexNet, written out: scaling layer, the five stages, unit norm, lin, mean, sum."""
    import torch
    import torch.nn.functional as F

    shift, scale = torch.tensor(SHIFT).view(1, 3, 1, 1), torch.tensor(SCALE).view(1, 3, 1, 1)

    def stages(x):
        x = F.relu(F.conv2d(x, trunk["features.0.weight"], trunk["features.0.bias"], stride=4, padding=2))
        yield x
        x = F.relu(F.conv2d(F.max_pool2d(x, 3, 2), trunk["features.3.weight"], trunk["features.3.bias"], padding=2))
        yield x
        x = F.relu(F.conv2d(F.max_pool2d(x, 3, 2), trunk["features.6.weight"], trunk["features.6.bias"], padding=1))
        yield x
        x = F.relu(F.conv2d(x, trunk["features.8.weight"], trunk["features.8.bias"], padding=1))
        yield x
        yield F.relu(F.conv2d(x, trunk["features.10.weight"], trunk["features.10.bias"], padding=1))

    total = 0.0
    for i, (fa, fb) in enumerate(zip(stages((a - shift) / scale), stages((b - shift) / scale))):
        na = fa / (torch.sqrt((fa ** 2).sum(1, keepdim=True)) + 1e-10)
        nb = fb / (torch.sqrt((fb ** 2).sum(1, keepdim=True)) + 1e-10)
        weighted = ((na - nb) ** 2 * lins[f"lin{i}.model.1.weight"].view(1, -1, 1, 1)).sum(1)
        total = total + weighted.mean((1, 2))
    return total


def test_lpips_matches_the_hand_computation_with_pulled_weights(lpips_mirror, lpips_files):
    import torch

    from ssl_zoo.evaluation.perceptual import load_lpips

    server, _ = lpips_files
    server.reset()
    metric = load_lpips("alex", progress=False)
    assert server.count("lpips-alex/alex.pth") == 1 and server.count("lpips-alex/alexnet-owt-7be5be79.pth") == 1
    torch.manual_seed(0)
    a, b = torch.rand(2, 3, 64, 64) * 2 - 1, torch.rand(2, 3, 64, 64) * 2 - 1
    trunk = torch.load(lpips_mirror["trunk"], weights_only=True)
    lins = torch.load(lpips_mirror["lin"], weights_only=True)
    expected = hand_lpips(trunk, lins, a, b)
    torch.testing.assert_close(metric.distance(a, b), expected, rtol=1e-5, atol=1e-7)
    assert float(metric.distance(a, a).abs().max()) == 0.0


def test_lpips_weights_are_never_fetched_offline_and_must_verify(lpips_mirror, monkeypatch):
    from ssl_zoo.errors import ChecksumError, OfflineError
    from ssl_zoo.evaluation.perceptual import load_lpips

    monkeypatch.setenv("SSL_ZOO_OFFLINE", "1")
    with pytest.raises(OfflineError, match="lpips-alex"):
        load_lpips("alex", progress=False)
    monkeypatch.delenv("SSL_ZOO_OFFLINE")
    entry = metric_entries()["lpips-alex"]
    wrong = (entry.sources[0], dataclasses.replace(entry.sources[1], sha256="0" * 64))
    monkeypatch.setitem(metric_entries(), "lpips-alex", dataclasses.replace(entry, sources=wrong))
    with pytest.raises(ChecksumError):
        load_lpips("alex", progress=False)


def upstream_skip_parameters(depth=32, down=(16, 32, 64, 128, 128, 128), up=(16, 32, 64, 128, 128, 128), skip=4,
                             kernels=(7, 7, 5, 5, 3, 3)):
    """Parameters of upstream's ``skip(...)`` counted layer by layer (conv weight + bias, BatchNorm 2 per channel)."""
    total, in_ch = 0, depth
    for i, (d, u, k) in enumerate(zip(down, up, kernels)):
        total += in_ch * skip + skip + 2 * skip  # skip branch: 1x1 conv + BN
        total += in_ch * d * k * k + d + 2 * d + d * d * k * k + d + 2 * d  # two convs of the deeper branch
        width = skip + (up[i + 1] if i + 1 < len(down) else d)
        total += 2 * width + width * u * k * k + u + 2 * u + u * u + u + 2 * u  # BN, up conv, 1x1 conv
        in_ch = d
    return total + up[0] * 3 + 3


def test_skip_network_has_upstreams_size_and_shape():
    import torch

    from ssl_zoo.evaluation.reconstruction import skip_network

    net = skip_network()
    assert sum(p.numel() for p in net.parameters()) == upstream_skip_parameters()
    assert net(torch.rand(1, 32, 128, 128)).shape == (1, 3, 128, 128)


def test_reconstruction_of_a_fundus_photograph_writes_pngs_and_lpips(lpips_mirror, r18_folder, tmp_path):
    import torch
    from PIL import Image
    from skimage import data

    from ssl_zoo.evaluation.perceptual import load_lpips
    from ssl_zoo.evaluation.reconstruction import reconstruct

    record = reconstruct(r18_folder, [data.retina()], tmp_path, image_size=32, noise_size=128, max_iter=4,
                         perceptual=("alex",), device="cpu", progress=False)
    entry = record["images"][0]
    saved = np.asarray(Image.open(entry["reconstruction"]))
    assert saved.shape == (32, 32, 3) and {f[-4:] for f in entry["figures"]} == {".png", ".pdf", ".svg"}
    # upstream's perceptual_distance.py reads both images back from disk and scales them to [-1, 1]
    original = np.array(Image.fromarray(data.retina()).resize((32, 32), Image.BICUBIC))
    as_read = [torch.as_tensor(x).permute(2, 0, 1)[None].float() / 255 * 2 - 1 for x in (original, np.array(saved))]
    expected = float(load_lpips("alex", progress=False).distance(*as_read)[0])
    assert entry["lpips"]["alex"] == pytest.approx(expected, rel=1e-5)
    written = json.loads((tmp_path / "reconstruction.json").read_text())
    assert written["preset"]["settings"]["max_iter"] == 4 and written["preset"]["settings"]["lr"] == 1e-3


def test_analysis_presets_are_the_papers_and_other_presets_refuse():
    from ssl_zoo.errors import UnknownPresetError
    from ssl_zoo.evaluation.presets import resolve, settings_class

    for protocol in ("saliency", "invariance", "multiview", "reconstruction"):
        resolved = resolve(protocol)
        assert resolved.preset == "ssl-transfer" and resolved.settings == settings_class(protocol)()
        with pytest.raises(UnknownPresetError, match="ssl-transfer"):
            resolve(protocol, "magical")
    recon = resolve("reconstruction").settings
    assert (recon.lr, recon.max_iter, recon.input_depth, recon.noise_size, recon.layer) == (1e-3, 3000, 32, 256,
                                                                                             "layer4")
    assert resolve("invariance").settings.eps == 1e-6 and resolve("multiview").settings.image_size == 224
