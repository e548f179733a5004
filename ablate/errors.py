"""User-facing errors of the toolkit layer (storage URLs, study files, options)."""


class AblateError(Exception):
    """Bad input to the toolkit: the CLI prints the message on one line and exits with status 2."""


class StorageError(AblateError):
    """A storage URL that is malformed, of an unsupported kind, or whose server cannot be reached."""


# pydantic's prefix for an error raised inside a validator (typer >= 0.29 checks option values with pydantic):
# "Invalid value for '--stack': Value error, 'x' is not one of ...". It names the Python exception, not the input.
_VALIDATOR_PREFIXES = ("Value error, ", "Assertion failed, ")


def one_line(message: str) -> str:
    """An error message as the CLI prints it: one line, without pydantic's validator prefixes."""
    text = " ".join(message.split())
    for prefix in _VALIDATOR_PREFIXES:
        text = text.replace(f": {prefix}", ": ")
        text = text.removeprefix(prefix)
    return text
