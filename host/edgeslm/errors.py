"""The exceptions edgeslm raises. Each carries what went wrong and what to do about it.

The library raises these; only the CLI turns them into a message and an exit code.
"""


class EdgeslmError(Exception):
    """Base class: ``str(err)`` is the problem, ``err.hint`` is the fix (may be empty)."""

    def __init__(self, message: str, hint: str = ""):
        super().__init__(message)
        self.hint = hint


class ModelFormatError(EdgeslmError):
    """A model or tokenizer file that cannot be read: wrong magic/version, truncated, bad values."""


class ModelMismatchError(EdgeslmError):
    """Two inputs that do not belong together (a tokenizer for another model, a calibration file...)."""


class UsageError(EdgeslmError):
    """An argument that cannot work (unknown scheme, bad group size, steps out of range...)."""
