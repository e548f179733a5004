"""User-facing errors of the toolkit layer (storage URLs, study files, options)."""

from crossgen.errors import CrossgenError


class AblateError(CrossgenError):
    """Bad input to the toolkit: the CLI prints the message on one line and exits with status 2."""


class StorageError(AblateError):
    """A storage URL that is malformed, of an unsupported kind, or whose server cannot be reached."""
