"""What travels on a scoring stream: requests in, predictions and dead letters out.

A request is JSON: one record ``{"f0": 1.0, ...}``, or an envelope
``{"id": "...", "inputs": ...}`` whose ``inputs`` take every form the HTTP API takes
(records, columns, one record, a tensor batch). Reading it goes through the same
``rows_from_json`` and ``InputSchema.check`` as an HTTP request, so a message is
refused for exactly the reasons a request would be, with the same field named.
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass
from typing import Any

import orjson

from forgeml.serving.inputs import InputSchema, RequestError, Rows, rows_from_json

ENVELOPE_KEYS = frozenset({"id", "inputs"})


@dataclass
class Message:
    """One request as a broker delivered it.

    ``id`` is the broker's id (a Redis entry id, a JetStream sequence), ``deliveries``
    how many times it has been handed out so far, counting this one; ``token`` is what
    the broker needs to acknowledge it, opaque to everyone else.
    """

    id: str
    data: bytes
    deliveries: int = 1
    token: Any = None
    missing: str | None = None  # the field the broker found no request in


@dataclass
class ScoringRequest:
    """A message that passed validation: its id and the rows the model will see."""

    message: Message
    id: str
    rows: Rows


def decode(message: Message, schema: InputSchema) -> ScoringRequest:
    """The checked rows of ``message``; RequestError names the field at fault."""
    if message.missing is not None:
        raise RequestError(f"the message has no {message.missing!r} field", message.missing)
    try:
        body = orjson.loads(message.data)
    except orjson.JSONDecodeError as exc:
        raise RequestError(f"the message is not JSON: {exc}", "body", 400) from None
    request_id = message.id
    if isinstance(body, dict) and "inputs" in body and body.keys() <= ENVELOPE_KEYS:
        given = body.get("id")
        if given is not None:
            if not isinstance(given, str | int) or isinstance(given, bool):
                raise RequestError('"id" must be a string or an integer', "id")
            request_id = str(given)
        inputs = body["inputs"]
    elif isinstance(body, dict | list):
        inputs = body  # one record (or a bare batch): the whole message is the input
    else:
        raise RequestError(
            'a message must be a JSON object: one record, or {"id": ..., "inputs": ...}', "body"
        )
    return ScoringRequest(message, request_id, schema.check(rows_from_json(inputs)))


def encode_output(
    request_id: str, model: str, version: int, outputs: list[Any], latency_ms: float
) -> bytes:
    return orjson.dumps(
        {
            "id": request_id,
            "model": model,
            "version": version,
            "outputs": outputs,
            "scored_at": time.time(),
            "latency_ms": round(latency_ms, 3),
        },
        option=orjson.OPT_SERIALIZE_NUMPY,
    )


def encode_dead_letter(
    message: Message, source: str, reason: str, error: str, field: str | None
) -> bytes:
    """A refused message, with its original bytes, so it can be fixed and sent again.

    ``reason`` is ``invalid`` (it can never be scored as sent), ``model`` (the model
    failed on it on every delivery) or ``deliveries`` (consumers kept stopping while
    holding it).
    """
    letter: dict[str, Any] = {
        "id": message.id,
        "source": source,
        "reason": reason,
        "error": error,
        "field": field,
        "deliveries": message.deliveries,
        "at": time.time(),
    }
    try:
        letter["payload"] = message.data.decode()
    except UnicodeDecodeError:
        letter["payload_base64"] = base64.b64encode(message.data).decode()
    return orjson.dumps(letter)
