"""Errors a user can fix. The CLI prints them as one line and exits with code 2."""

from __future__ import annotations


class UserError(Exception):
    """Bad input: a scenario file, a model id, an output directory.

    `where` names the file (and key path) the problem is in, so the message reads
    ``scenarios/bert.yaml: model.id: ...``.
    """

    exit_code = 2

    def __init__(self, message: str, where: str | None = None):
        # One line, always: a path or value taken from the input may hold a line break.
        where = None if where is None else _one_line(str(where))
        self.where = where
        message = _one_line(str(message))
        super().__init__(f"{where}: {message}" if where else message)


def _one_line(text: str) -> str:
    return text.replace("\r", "\\r").replace("\n", "\\n")


class ConfigError(UserError):
    """A scenario file that cannot be read or does not validate."""


class ModelNotFoundError(UserError):
    """A checkpoint that cannot be found where we looked."""


class DataError(UserError):
    """A dataset that cannot be loaded or does not fit the scenario."""
