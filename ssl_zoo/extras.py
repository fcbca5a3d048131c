"""Optional dependencies: which extra brings each one, and one error line that names it when it is missing."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from .errors import MissingExtraError

# top-level module -> the extra of pyproject.toml that installs it
EXTRA_OF = {
    "sklearn": "eval", "torchmetrics": "eval", "matplotlib": "eval",
    "segmentation_models_pytorch": "medical", "pydicom": "medical", "nibabel": "medical",
    "huggingface_hub": "hub", "monai": "monai", "kornia": "pretrain", "tensorboard": "pretrain", "tensorflow": "tf", "jax": "jax", "haiku": "jax", "dill": "jax",
}


def install_hint(module: str) -> str | None:
    """``pip install "ssl_zoo[EXTRA]"`` for an optional module (dotted names allowed), else None."""
    extra = EXTRA_OF.get(module.split(".")[0])
    return f'pip install "ssl_zoo[{extra}]"' if extra else None


def missing_extra(exc: ModuleNotFoundError) -> MissingExtraError | None:
    """The one-line error for ``exc`` when it is an optional module ssl_zoo knows, else None."""
    hint = install_hint(exc.name or "")
    if hint is None:
        return None
    error = MissingExtraError(f"{exc.name.split('.')[0]} is not installed: {hint}")
    error.name = exc.name
    return error


@contextlib.contextmanager
def extra_imports() -> Iterator[None]:
    """Import optional modules inside this block; a missing one raises ``MissingExtraError`` naming its extra.

    Example:
        >>> with extra_imports():
        ...     from sklearn.linear_model import LogisticRegression
    """
    try:
        yield
    except ModuleNotFoundError as exc:
        error = missing_extra(exc)
        if error is None:
            raise
        raise error from None
