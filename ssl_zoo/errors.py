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


class SettingError(SslZooError, ValueError):
    """An environment variable set to a value ssl_zoo does not know."""


class UnknownPresetError(SslZooError, KeyError):
    """A protocol or protocol-preset name that does not exist; the message lists the valid ones."""


class PresetError(SslZooError, ValueError):
    """A preset table or a setting override that does not fit the protocol's settings (unknown field, wrong type)."""


class StatisticWarning(UserWarning):
    """A result computed on data too small to support it (a singular covariance, one class in a test set): the
    number is reported, with this warning saying why it should not be trusted and what to give instead."""
