"""The Open Inference Protocol (V2) over REST, as KServe, Triton and MLServer speak it.

A deployment is a V2 "model". A model with named fields takes one input tensor per
field (shape ``[n]`` or ``[n, 1]``); a tensor model takes one input. Both JSON data and
the binary tensor extension (``Inference-Header-Content-Length``, raw little-endian
bytes after the JSON header) are read and written, so clients such as tritonclient,
which send binary tensors by default, work unchanged.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import orjson

from forgeml.serving.inputs import InputSchema, RequestError, Rows

DATATYPES: dict[str, str] = {
    "BOOL": "bool",
    "UINT8": "uint8",
    "UINT16": "uint16",
    "UINT32": "uint32",
    "UINT64": "uint64",
    "INT8": "int8",
    "INT16": "int16",
    "INT32": "int32",
    "INT64": "int64",
    "FP16": "float16",
    "FP32": "float32",
    "FP64": "float64",
}
_FROM_NUMPY = {numpy: v2 for v2, numpy in DATATYPES.items()}


def datatype_of(kind: str) -> str:
    """The V2 datatype for a signature type."""
    return _FROM_NUMPY.get(kind, "BYTES")


def model_metadata(
    name: str, version: int, flavor: str, schema: InputSchema, output: str
) -> dict[str, Any]:
    if schema.kind == "tensor":
        inputs = [
            {
                "name": "input",
                "datatype": datatype_of(schema.tensor_dtype or "float32"),
                "shape": [-1, *schema.tensor_shape[1:]],
            }
        ]
    else:
        inputs = [
            {"name": c.name, "datatype": datatype_of(c.kind), "shape": [-1]} for c in schema.columns
        ]
    return {
        "name": name,
        "versions": [str(version)],
        "platform": f"forgeml-{flavor}",
        "inputs": inputs,
        "outputs": [{"name": output, "datatype": "FP64", "shape": [-1]}],
    }


def parse_request(body: bytes, header_length: int | None) -> tuple[dict[str, Any], bytes]:
    """The JSON part of an infer request and the binary tail that follows it, if any."""
    head, tail = (
        (body, b"") if header_length is None else (body[:header_length], body[header_length:])
    )
    if header_length is not None and not 0 < header_length <= len(body):
        raise RequestError(
            f"Inference-Header-Content-Length {header_length} does not fit a body of "
            f"{len(body)} bytes",
            "Inference-Header-Content-Length",
            400,
        )
    try:
        request = orjson.loads(head)
    except orjson.JSONDecodeError as exc:
        raise RequestError(f"the body is not valid JSON: {exc}", "body", 400) from None
    if not isinstance(request, dict) or not isinstance(request.get("inputs"), list):
        raise RequestError('an infer request is an object with a list "inputs"', "inputs")
    return request, tail


def request_rows(request: dict[str, Any], tail: bytes, schema: InputSchema) -> Rows:
    """The rows an infer request carries, in the shape the model's schema reads."""
    tensors: dict[str, np.ndarray] = {}
    lists: dict[str, list[Any]] = {}  # JSON numbers of named fields, kept as they came
    offset = 0
    for position, item in enumerate(request["inputs"]):
        where = f"inputs[{position}]"
        if not isinstance(item, dict):
            raise RequestError(f"{where} must be an object", where)
        name, datatype, shape = item.get("name"), item.get("datatype"), item.get("shape")
        if not isinstance(name, str):
            raise RequestError(f"{where} has no name", where)
        if datatype not in DATATYPES and datatype != "BYTES":
            raise RequestError(f"input {name!r}: unknown datatype {datatype!r}", name)
        if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise RequestError(f"input {name!r}: shape must be a list of sizes", name)
        size = int(np.prod(shape)) if shape else 1
        parameters = item.get("parameters") or {}
        binary_size = parameters.get("binary_data_size") if isinstance(parameters, dict) else None
        if binary_size is not None:
            if not isinstance(binary_size, int) or offset + binary_size > len(tail):
                raise RequestError(f"input {name!r}: binary_data_size runs past the body", name)
            raw = tail[offset : offset + binary_size]
            offset += binary_size
            array = _from_binary(name, datatype, raw, size)
        else:
            if "data" not in item:
                raise RequestError(f"input {name!r} has no data", name)
            column = _json_column(datatype, item["data"], shape, schema)
            if column is not None:
                lists[name] = column
                continue
            array = _from_json(name, datatype, item["data"], size)
        tensors[name] = array.reshape(shape) if shape else array
    if schema.kind == "tensor":
        if len(tensors) != 1:
            raise RequestError(f"this model takes one input tensor, got {len(tensors)}", "inputs")
        tensor = next(iter(tensors.values()))
        if tensor.ndim == 0:
            raise RequestError("the input tensor needs a batch dimension", "inputs")
        return Rows(int(tensor.shape[0]), tensor=tensor)
    columns: dict[str, list[Any]] = {}
    count: int | None = None
    for name, values in lists.items():
        if count is not None and len(values) != count:
            raise RequestError(f"input {name!r} has {len(values)} rows, other inputs {count}", name)
        count = len(values)
        columns[name] = values
    for name, tensor in tensors.items():
        if tensor.ndim == 2 and tensor.shape[1] == 1:
            tensor = tensor[:, 0]
        if tensor.ndim != 1:
            raise RequestError(
                f"input {name!r} has shape {list(tensor.shape)}; a field is [n] or [n, 1]", name
            )
        if count is not None and tensor.shape[0] != count:
            raise RequestError(
                f"input {name!r} has {tensor.shape[0]} rows, other inputs {count}", name
            )
        count = int(tensor.shape[0])
        values = tensor.tolist()
        if tensor.dtype == object:
            values = [v.decode() if isinstance(v, bytes) else v for v in values]
        columns[name] = values
    if not count:
        raise RequestError("the request has no rows", "inputs")
    return Rows(count, columns=columns)


def _json_column(
    datatype: str, data: Any, shape: list[int], schema: InputSchema
) -> list[Any] | None:
    """A named field's numbers as the JSON gave them, or None where numpy must convert.

    The signature check that follows looks at every value anyway; building an array only
    to turn it back into a list cost more than the model call for one-row requests.
    """
    if schema.kind == "tensor" or not isinstance(data, list):
        return None
    if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)) or len(data) != shape[0]:
        return None
    if datatype.startswith("FP"):
        accepted: tuple[type, ...] = (float, int)
    elif datatype.startswith("INT"):
        accepted = (int,)
    else:
        return None
    if all(type(v) in accepted for v in data):
        return data
    return None


def _from_json(name: str, datatype: str, data: Any, size: int) -> np.ndarray:
    flat = _flatten(data)
    if len(flat) != size:
        raise RequestError(f"input {name!r}: shape says {size} values, data has {len(flat)}", name)
    if datatype == "BYTES":
        return np.array(flat, dtype=object)
    try:
        return np.array(flat, dtype=DATATYPES[datatype])
    except (TypeError, ValueError) as exc:
        raise RequestError(f"input {name!r}: data is not {datatype}: {exc}", name) from None


def _flatten(data: Any) -> list[Any]:
    if not isinstance(data, list):
        return [data]
    if not data or not isinstance(data[0], list):
        return data
    flat: list[Any] = []
    for item in data:
        flat.extend(_flatten(item))
    return flat


def _from_binary(name: str, datatype: str, raw: bytes, size: int) -> np.ndarray:
    if datatype != "BYTES":
        dtype = np.dtype(DATATYPES[datatype]).newbyteorder("<")
        if len(raw) != size * dtype.itemsize:
            raise RequestError(
                f"input {name!r}: {len(raw)} bytes for {size} {datatype} values", name
            )
        return np.frombuffer(raw, dtype=dtype)
    values: list[bytes] = []
    position = 0
    while position < len(raw):
        if position + 4 > len(raw):
            raise RequestError(f"input {name!r}: truncated BYTES element", name)
        (length,) = struct.unpack_from("<I", raw, position)
        position += 4
        values.append(raw[position : position + length])
        position += length
    if len(values) != size:
        raise RequestError(f"input {name!r}: {len(values)} BYTES elements for {size}", name)
    return np.array(values, dtype=object)


def wants_binary(request: dict[str, Any]) -> bool:
    parameters = request.get("parameters") or {}
    if isinstance(parameters, dict) and parameters.get("binary_data_output"):
        return True
    for output in request.get("outputs") or []:
        options = output.get("parameters") if isinstance(output, dict) else None
        if isinstance(options, dict) and options.get("binary_data"):
            return True
    return False


def response(
    model: str,
    version: int,
    request_id: str | None,
    output_name: str,
    values: list[Any],
    binary: bool,
    extra: dict[str, Any] | None = None,
) -> tuple[bytes, int | None]:
    """The response body, and the JSON header's length when binary data follows it."""
    array = np.asarray(values)
    if array.dtype.kind in "UO":
        datatype = "BYTES"
    else:
        if array.dtype.kind == "f" and array.dtype != np.float32:
            array = array.astype(np.float64)
        datatype = _FROM_NUMPY.get(array.dtype.name, "FP64")
    output: dict[str, Any] = {
        "name": output_name,
        "shape": list(array.shape),
        "datatype": datatype,
    }
    payload: dict[str, Any] = {
        "model_name": model,
        "model_version": str(version),
        "outputs": [output],
    }
    if request_id is not None:
        payload["id"] = request_id
    if extra:
        payload["parameters"] = extra
    if not binary:
        output["data"] = (
            array.reshape(-1).tolist()
            if datatype != "BYTES"
            else [str(v) for v in array.reshape(-1).tolist()]
        )
        return orjson.dumps(payload), None
    if datatype == "BYTES":
        raw = b"".join(
            struct.pack("<I", len(b)) + b for b in (str(v).encode() for v in array.reshape(-1))
        )
    else:
        raw = array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
    output["parameters"] = {"binary_data_size": len(raw)}
    head = orjson.dumps(payload)
    return head + raw, len(head)
