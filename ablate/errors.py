"""Errors a user can fix: each message names what was wrong and what is allowed."""


class AblateError(ValueError):
    """Base class of every user-facing error raised by ablate."""


class ConfigError(AblateError):
    """A config or study file has an unknown key, a bad value or a bad combination."""


class DataError(AblateError):
    """A data source is missing, has the wrong layout, or holds a file that cannot be read."""
