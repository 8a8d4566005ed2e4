"""Errors forgeml raises on purpose, each with a message meant for the person at the keyboard.

Catch :class:`ForgeMLError` to handle every one of them; the command line turns any of
them into one line on stderr and exit status 2, never a traceback::

    ForgeMLError
    ├── ConfigError              a setting has a bad value or an unknown key
    ├── StoreError
    │   ├── SchemaOutdatedError  the database needs `forgeml db upgrade`
    │   └── SchemaTooNewError    the database was written by a newer forgeml
    ├── NotFoundError            no run / model / version / alias by that name
    ├── AlreadyExistsError       a name or value that must be unique is taken
    ├── ConflictError            an object changed since it was read (compare-and-set lost)
    ├── InvalidArgumentError     a bad value passed to a public function
    │   └── FilterSyntaxError    a malformed `search_runs` filter (knows the column)
    ├── ArtifactError
    │   ├── ArtifactNotFoundError
    │   └── ArtifactCorruptedError   stored bytes no longer match their sha256
    ├── ModelFlavorError         a model cannot be saved or loaded by its flavor
    ├── DataError
    │   ├── DataSourceError      a source cannot be read (names file, line, column)
    │   └── ValidationFailedError    a check of severity "error" failed
    ├── PipelineError            a pipeline cannot be built, or its run failed (has run_id)
    └── ServingError             a deployment cannot be served as declared
"""

from __future__ import annotations


class ForgeMLError(Exception):
    """Base of every error forgeml raises deliberately."""


class ConfigError(ForgeMLError):
    """A setting is unknown or has a value that cannot be used."""


class StoreError(ForgeMLError):
    """The metadata database cannot be used as it is."""


class SchemaOutdatedError(StoreError):
    """The database schema is older than this forgeml: an upgrade is needed."""


class SchemaTooNewError(StoreError):
    """The database schema is newer than this forgeml understands."""


class NotFoundError(ForgeMLError, LookupError):
    """A requested object does not exist."""


class AlreadyExistsError(ForgeMLError):
    """An object that must be unique already exists."""


class ConflictError(ForgeMLError):
    """An object changed between reading and writing it; read it again and retry."""


class InvalidArgumentError(ForgeMLError, ValueError):
    """A public function received a value it cannot accept."""


class FilterSyntaxError(InvalidArgumentError):
    """A run filter does not parse; ``position`` is the 0-based column of the bad token."""

    def __init__(self, message: str, text: str, position: int) -> None:
        self.text = text
        self.position = position
        self.reason = message
        super().__init__(f"invalid filter at column {position + 1}: {message} in {text!r}")


class ArtifactError(ForgeMLError):
    """An artifact cannot be stored or read."""


class ArtifactNotFoundError(ArtifactError, NotFoundError):
    """No artifact is stored under that digest or path."""


class ArtifactCorruptedError(ArtifactError):
    """Stored bytes no longer hash to the digest they were stored under."""


class ModelFlavorError(ForgeMLError):
    """A model cannot be saved or loaded by the flavor that owns it."""


class DataError(ForgeMLError):
    """A dataset cannot be ingested, read or validated."""


class DataSourceError(DataError):
    """A data source cannot be read; the message names the file, line and column it can."""


class ValidationFailedError(DataError):
    """A validation suite found failing checks of severity "error"; ``result`` has them all."""

    def __init__(self, message: str, result: object) -> None:
        super().__init__(message)
        self.result = result


class PipelineError(ForgeMLError):
    """A pipeline cannot be built, or a pipeline run failed; ``run_id`` names the run."""

    def __init__(self, message: str, run_id: str | None = None) -> None:
        super().__init__(message)
        self.run_id = run_id


class ServingError(ForgeMLError):
    """A deployment cannot be served as declared: a model fails to load or to verify."""
