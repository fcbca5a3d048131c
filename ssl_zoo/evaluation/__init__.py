"""Evaluation protocols of the transfer-learning papers: linear probe, fine-tune, few-shot, segmentation,
comparison tables and plots, occlusion saliency and feature invariance.

One module per job: ``images`` (file formats), ``data`` (dataset readers), ``splits``, ``preprocess``, ``backbone``
(the model under test), ``features`` (cached frozen features), ``metrics``, ``stats``, ``results`` (JSON/CSV
files), ``report`` (a protocol's record over trials), ``parallel`` (torchrun DDP), ``presets`` (the papers' protocol
settings, data in ``presets/*.toml``), ``paper_splits`` (the papers' validation split), ``probe``, ``finetune`` with
``finetune_recipe``, ``fewshot``, ``segment`` with ``segment_masks`` and ``segment_augment``, ``compare``,
``plots``, ``saliency``, ``invariance``.
"""
