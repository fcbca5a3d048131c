"""The exceptions ssl_zoo raises. Each message is one line that names the next action.

Every type also inherits the builtin exception a caller would already catch (``KeyError`` for an
unknown name, ``OSError`` for I/O, ``ValueError`` for bad content), so ``except OSError`` keeps working.
"""

from __future__ import annotations


class SslZooError(Exception):
    """Base class of every error ssl_zoo raises on purpose."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else self.__class__.__name__


class UnknownModelError(SslZooError, KeyError):
    """A registry name that does not exist."""


class RegistryError(SslZooError, ValueError):
    """A catalog table that breaks the schema (a bug in ssl_zoo or in a user-added table)."""


class DownloadError(SslZooError, OSError):
    """A file could not be fetched (network, HTTP status, interrupted transfer)."""


class OfflineError(DownloadError):
    """Offline mode is on and a file is not in the cache."""


class ManualDownloadRequired(DownloadError):
    """The entry has no public URL: the user has to supply the file."""


class DiskFullError(SslZooError, OSError):
    """The disk filled up while writing; nothing partial was kept."""


class ChecksumError(SslZooError, ValueError):
    """A file's sha256 differs from the pinned or previously recorded one."""


class UnpinnedFileError(ChecksumError):
    """``require_hashes`` is on and a file has neither a pinned nor a recorded sha256."""


class NotACheckpointError(SslZooError, ValueError):
    """The bytes are not a checkpoint (an HTML page, a truncated or unknown container)."""


class UnsafePickleError(NotACheckpointError):
    """A pickle references a global outside the allow-list; nothing from it was run."""


class ConversionError(SslZooError, ValueError):
    """The converted state dict does not match the target architecture exactly."""


class ModelFolderError(SslZooError, ValueError):
    """A model folder is missing a file or does not match its recorded sha256."""


class DatasetError(SslZooError, ValueError):
    """An evaluation dataset that cannot be read or does not fit the protocol asked for."""


class HubError(DownloadError):
    """The Hugging Face Hub could not be reached, or lacks the repository, revision or file asked for."""


class PublishError(SslZooError, OSError):
    """A publish to the Hugging Face Hub was refused or failed; nothing is half-published."""


class BundleError(SslZooError, ValueError):
    """An air-gap bundle that is malformed, unsafe or does not match its manifest; nothing was installed."""


class BundleNotFoundError(BundleError, FileNotFoundError):
    """A bundle path that is not a file (also a ``FileNotFoundError``); nothing was installed."""


class SettingError(SslZooError, ValueError):
    """An environment variable set to a value ssl_zoo does not know."""


class UnknownTaskError(SslZooError, ValueError):
    """A ``task=`` that ssl_zoo does not build."""


class OptionError(SslZooError, ValueError):
    """An option that cannot apply to the model or task asked for (e.g. ``features_only`` with a segmentation U-Net)."""


class ImageInputError(SslZooError, ValueError):
    """An input a transform cannot read as an image or a volume."""


class UnknownMethodError(SslZooError, KeyError):
    """A pre-training method name that does not exist."""


class TrainingDataError(SslZooError, ValueError):
    """The training data cannot be read or does not suit the method."""


class ResumeError(SslZooError, ValueError):
    """A checkpoint that does not belong to this run's settings, no checkpoint to resume, or a finished run whose
    files are incomplete."""


class NonFiniteLossError(SslZooError, FloatingPointError):
    """The loss became NaN or infinite; the last checkpoint is from before it."""


class HubFallbackWarning(UserWarning):
    """``SSL_ZOO_SOURCE=auto`` could not reach the Hub and converts the upstream file instead."""


class OutputFolderError(SslZooError, NotADirectoryError):
    """An output path that exists and is not a folder."""


class MissingExtraError(SslZooError, ModuleNotFoundError):
    """An optional dependency that is not installed; the message names the extra that brings it."""


class UnknownDatasetError(SslZooError, KeyError):
    """A dataset card name that does not exist."""


class DatasetLayoutError(DatasetError, FileNotFoundError):
    """A dataset root that lacks a file or folder of the card's layout (also a ``FileNotFoundError``)."""


class DatasetLabelError(DatasetError):
    """Label values a card does not know, or a class with no image: reading them would change the task."""


class DatasetSplitError(DatasetError):
    """A split that cannot be scored: no positive of a scored finding, or an empty split."""


class FrameworkError(SslZooError, ValueError):
    """A ``framework=`` / ``spatial_dims=`` that ssl_zoo does not build for this model."""


class SslZooWarning(UserWarning):
    """Base class of the warnings ssl_zoo gives (filter them with ``warnings.simplefilter``)."""


class InputWarning(SslZooWarning):
    """A model's first batch does not look like what its preprocessing produces."""


def one_line(exc: BaseException) -> str:
    """The first line of an exception's message (tarfile's and huggingface_hub's run over several lines)."""
    text = str(exc).strip()
    return text.splitlines()[0].rstrip(":") if text else type(exc).__name__


def root_cause(exc: BaseException) -> BaseException:
    """The innermost error of ``exc``'s chain, stripped of its own traceback and chain.

    Raising a friendlier error ``from root_cause(exc)`` keeps the original failure as ``__cause__`` for code that
    inspects it, while Python prints one short cause instead of every intermediate wrapper.
    """
    while (inner := exc.__cause__ or exc.__context__) is not None:
        exc = inner
    exc.__traceback__ = None
    exc.__suppress_context__ = True
    return exc


class ResourceLimitError(NotACheckpointError):
    """A file declares more than ssl_zoo's budget for it allows (size, depth, memo, ratio); nothing was allocated."""


class StalledDownloadError(DownloadError):
    """A transfer stayed below the minimum rate, or sent nothing for the stall budget; its partial file is kept."""


class UnknownPresetError(SslZooError, KeyError):
    """A protocol or protocol-preset name that does not exist; the message lists the valid ones."""


class PresetError(SslZooError, ValueError):
    """A preset table or a setting override that does not fit the protocol's settings (unknown field, wrong type)."""


class RunExistsError(SslZooError, FileExistsError):
    """A pre-training run folder that already holds a run; ``--resume`` continues it, ``--overwrite`` replaces it."""


class PictureWarning(UserWarning):
    """A figure (an extra beside a result) could not be drawn; the result itself was written."""


class StatisticWarning(UserWarning):
    """A result computed on data too small to support it (a singular covariance, one class in a test set): the
    number is reported, with this warning saying why it should not be trusted and what to give instead."""


class UnknownViewRecipeError(SslZooError, KeyError):
    """A view recipe name that ``pretraining/views.toml`` does not define."""


class MonitorSetupError(SslZooError, ValueError):
    """Watching a pre-training run was asked for in a way the run cannot do."""


class WandbMissingError(SslZooError, ImportError):
    """Weights & Biases logging was asked for but ``wandb`` is not installed."""


class IntensityError(SslZooError, ValueError):
    """An intensity recipe that is malformed, or pixels it cannot map to [0, 1]."""
