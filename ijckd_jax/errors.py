"""Errors a user can fix. main.py and the tools print their message as one line, `error: ...`,
without a traceback, and exit non-zero; any other exception is a bug and keeps its traceback."""


class RunError(Exception):
    """A problem with a run's input or its workdir that the message explains with its fix."""


class ConfigError(RunError, ValueError):
    """A config value that cannot run: the message names the field, the value and the fix."""


class DataUnavailable(RunError, RuntimeError):
    """The data set is not here or cannot be read; the message says how to get it."""


class SavedModelError(RunError, ValueError):
    """A saved model (a teacher) that is incomplete or is not the model its model.json names."""


class WorkdirError(RunError):
    """The workdir belongs to another run, another process holds it, or it cannot be written."""


class Diverged(RunError, FloatingPointError):
    """Training diverged; the last checkpoint before it is kept."""
