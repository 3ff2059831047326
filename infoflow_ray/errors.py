"""Errors a user can act on. Each message is one line naming the bad value and what is allowed."""


class InfoflowError(Exception):
    """Base class of the errors infoflow-ray raises on purpose."""


class ConfigError(InfoflowError, ValueError):
    """A configuration value is out of range or of the wrong kind."""


class DatasetUnavailableError(InfoflowError, RuntimeError):
    """A dataset is neither on disk nor downloadable here."""


class ResultsError(InfoflowError, RuntimeError):
    """A results location cannot be used (not writable, a file, an incompatible schema)."""


def require(ok: bool, field: str, value: object, allowed: str) -> None:
    """Raise ``ConfigError("FIELD must be ALLOWED, got VALUE")`` unless ``ok``: the one-line message of every check."""
    if not ok:
        raise ConfigError(f"{field} must be {allowed}, got {value!r}")
