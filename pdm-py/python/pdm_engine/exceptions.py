"""The exceptions of pdm_engine, all rooted in :class:`PdmError`.

Bad parameters and bad data are also ``ValueError`` (scikit-learn's convention), so code written
for scikit-learn catches them unchanged.
"""


class PdmError(Exception):
    """Base class of every error raised by pdm_engine."""


class ParameterError(PdmError, ValueError):
    """A parameter is out of its allowed range; the message names it and the range."""


class DataError(PdmError, ValueError):
    """Input data cannot be used: non-finite values, wrong shape or feature count, empty, non-numeric."""


class NotFittedError(PdmError, ValueError, AttributeError):
    """The estimator was used before ``fit`` (as scikit-learn's NotFittedError)."""


class ModelFileError(PdmError, ValueError):
    """A model file is not a pdm model, is damaged, or holds another kind of model."""


class ModelVersionError(ModelFileError):
    """A model file was written by a newer pdm; upgrade pdm_engine to read it."""


class ModelIOError(PdmError, OSError):
    """A model file cannot be read or written (missing, permissions, disk)."""


__all__ = [
    "PdmError",
    "ParameterError",
    "DataError",
    "NotFittedError",
    "ModelFileError",
    "ModelVersionError",
    "ModelIOError",
]
