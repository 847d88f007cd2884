"""
Exception types shared by the core library.

Every core module raises one of these (or a subclass) for bad input or configuration, so
that nodes and the CLI can tell "this input is wrong" from a programming error.
"""


class LeptonError(Exception):
    """Base class of every error this package raises on purpose."""


class ConfigError(LeptonError):
    """A configuration file, parameter or command-line option is invalid."""


class ModelError(LeptonError):
    """A model file is missing, unreadable or has unexpected metadata."""


class SchemaError(LeptonError, ValueError):
    """A JSON payload does not follow its ``lepton.*`` schema."""


class ImageError(LeptonError, ValueError):
    """An image is unreadable, empty, too large or in an unsupported encoding."""


class BackendError(ModelError):
    """An inference backend is unavailable on this machine or failed to run a model."""
