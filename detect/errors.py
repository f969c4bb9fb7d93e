"""Exceptions raised by detect's library code.

Only ``detect.cli`` turns these into exit codes and one-line messages. Each message says
what was expected, what was found, and, where there is one, what to do about it.
"""

from __future__ import annotations


class DetectError(Exception):
    """Base class: a failure the user can fix; the CLI prints it as one line, exit 1."""


class ConfigError(DetectError, ValueError):
    """An option or a combination of options is invalid."""


class DatasetError(DetectError):
    """A converted dataset folder is missing, incomplete or not a detect dataset."""


class DicomError(DetectError):
    """A DICOM file or folder cannot be used."""


class AnnotationError(DetectError):
    """A VOC XML annotation cannot be used.

    ``kind`` is one of the accounting kinds of docs/contracts.md, contract 2 (``malformed-xml``,
    ``forbidden-entity``, ``unknown-label``, ...), so callers can report it as-is.
    """

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


class PredictionsError(DetectError):
    """A predictions file, or a record in it, cannot be read or scored."""


class NothingToConvert(DetectError):
    """The inputs hold nothing convert can use (no DICOM slice, no usable annotation)."""


class UnsafePathError(DetectError):
    """A path built from input values would leave the folder it must stay in."""


class OutputFolderError(DetectError):
    """An output folder cannot be used: it holds someone else's files, or another detect
    process is writing it."""


class EnvironmentProblem(DetectError):
    """The installed software is broken (for example a mismatched torch/torchvision)."""


class TrainingStackMissing(EnvironmentProblem):
    """A command or model needs the training packages (torch, torchvision, ultralytics),
    which the base install (``pip install detect``) does not have; the CLI exits 2."""


class RunFolderError(DetectError):
    """A run folder or weights file is not a detect model, or does not match its data."""


class DownloadError(DetectError):
    """An IDC selection or download cannot be done, or ended incomplete."""


class ExportError(DetectError):
    """An exported model does not reproduce its PyTorch model (the parity check failed)."""


class DicomwebError(DetectError):
    """A DICOMweb server cannot be reached, refuses a request, or answers something that
    cannot be used (the message names the server and the request, never a credential)."""
