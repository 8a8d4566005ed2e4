"""``models:/`` URIs: ``models:/NAME/VERSION``, ``models:/NAME@ALIAS`` and ``models:/NAME``
(the newest version)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from forgeml.errors import InvalidArgumentError

_NAME = r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,255}"
_ALIAS = r"[A-Za-z][A-Za-z0-9_\-]{0,127}"
NAME_PATTERN = re.compile(rf"^{_NAME}$")
ALIAS_PATTERN = re.compile(rf"^{_ALIAS}$")
_URI = re.compile(rf"^models:/(?P<name>{_NAME})(?:/(?P<version>\d+)|@(?P<alias>{_ALIAS}))?/?$")


@dataclass(frozen=True)
class ModelRef:
    """A reference to one version: by number, by alias, or (neither) the latest."""

    name: str
    version: int | None = None
    alias: str | None = None

    def __str__(self) -> str:
        if self.version is not None:
            return f"models:/{self.name}/{self.version}"
        if self.alias is not None:
            return f"models:/{self.name}@{self.alias}"
        return f"models:/{self.name}"


def parse_model_uri(uri: str) -> ModelRef:
    match = _URI.match(uri.strip()) if isinstance(uri, str) else None
    if match is None:
        raise InvalidArgumentError(
            f"{uri!r} is not a model URI; use models:/NAME/VERSION, models:/NAME@ALIAS "
            "or models:/NAME"
        )
    version = match.group("version")
    return ModelRef(match.group("name"), int(version) if version else None, match.group("alias"))


def check_model_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise InvalidArgumentError(
            f"model name {name!r} is not valid: use letters, digits, '_', '-' and '.', "
            "starting with a letter or digit (at most 256 characters)"
        )
    return name


def check_alias(alias: str) -> str:
    if not isinstance(alias, str) or not ALIAS_PATTERN.match(alias):
        raise InvalidArgumentError(
            f"alias {alias!r} is not valid: use letters, digits, '_' and '-', starting with "
            "a letter (at most 128 characters)"
        )
    if alias.lower() == "latest":
        raise InvalidArgumentError(
            "'latest' is reserved: models:/NAME already means the newest version"
        )
    return alias
