"""Alembic revisions of the metadata schema.

``HEAD`` is kept here as a constant so that opening a database checks its revision
without loading Alembic; a test proves it equals the newest revision script.
"""

REVISIONS = ("0001", "0002", "0003", "0004", "0005", "0006", "0007")
HEAD = REVISIONS[-1]
