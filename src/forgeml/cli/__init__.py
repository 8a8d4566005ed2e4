"""The ``forgeml`` command: one module per noun, errors as one line and exit status 2."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the command; a ForgeMLError becomes one line on stderr, exit 2."""
    from forgeml.cli.app import app
    from forgeml.errors import ForgeMLError

    try:
        app(args=argv, standalone_mode=True)
    except ForgeMLError as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:
        message = _environment_problem(exc)
        if message is None:
            raise  # a bug: the traceback is what a report needs
        _fail(message)


def _fail(message: str) -> None:
    print(f"error: {' '.join(message.split())}", file=sys.stderr)
    sys.exit(2)


def _environment_problem(exc: Exception) -> str | None:
    """A one-line description of a failure outside forgeml (disk, network), else None."""
    if isinstance(exc, OSError):
        where = f" ({exc.filename})" if exc.filename else ""
        return f"{exc.strerror or exc}{where}"
    sqlalchemy_exc = sys.modules.get("sqlalchemy.exc")
    if sqlalchemy_exc is not None and isinstance(exc, sqlalchemy_exc.OperationalError):
        return f"the metadata database cannot be reached: {exc.orig}"
    return None


__all__ = ["main"]
