"""The intensity recipe record and its text form: how stored pixel values become [0, 1] intensities.

Pure data (no numpy, no torch), so registry entries and dataset cards can hold a recipe; reading pixels with a
recipe is ``ssl_zoo.intensity``'s job. Text forms: "auto", "minmax", "window:LOW,HIGH", "file-window".
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import IntensityError

SCALINGS = ("auto", "minmax", "window", "file-window")


@dataclass(frozen=True)
class Intensity:
    """An intensity recipe (see the module docstring).

    Attributes:
        scaling: "auto", "minmax", "window" or "file-window".
        window: (low, high) in modality units, for "window".
    """

    scaling: str = "auto"
    window: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if self.scaling not in SCALINGS:
            raise IntensityError(f"unknown intensity scaling {self.scaling!r}; choose one of {SCALINGS} "
                                 "(a window as 'window:LOW,HIGH')")
        if (self.scaling == "window") != (self.window is not None):
            raise IntensityError("a window needs scaling 'window' and (low, high): write 'window:LOW,HIGH'")
        if self.window is not None and not self.window[0] < self.window[1]:
            raise IntensityError(f"window {self.window} needs low < high")

    def __str__(self) -> str:
        return f"window:{self.window[0]:g},{self.window[1]:g}" if self.window else self.scaling


def parse_intensity(spec: "str | Intensity | None") -> Intensity:
    """An ``Intensity`` from its text form ("minmax", "window:-1000,1000", ...); None is "auto".

    Raises:
        IntensityError: For an unknown recipe or a malformed window.

    Example:
        >>> parse_intensity("window:-1000,1000").window
        (-1000.0, 1000.0)
    """
    if spec is None or isinstance(spec, Intensity):
        return spec or Intensity()
    text = str(spec).strip()
    if not text.startswith("window:"):
        return Intensity(text)
    try:
        low, high = (float(v) for v in text[len("window:"):].split(","))
    except ValueError as exc:
        raise IntensityError(f"malformed window {text!r}: write 'window:LOW,HIGH', e.g. 'window:-1000,1000'") from exc
    return Intensity("window", (low, high))
