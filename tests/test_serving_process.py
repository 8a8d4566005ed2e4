"""`forgeml serve` as a real process: third-party V2 clients, workers, shutdown, the CLI."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pyarrow as pa
import pytest

import forgeml as fm
from forgeml_cli import cli, cli_json
from serving_support import FEATURES, record, register_versions, table


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Served:
    def __init__(self, process: subprocess.Popen[bytes], base: str, log: Path) -> None:
        self.process = process
        self.base = base
        self.log = log


def _start(tmp_path: Path, *args: str) -> Served:
    port = _free_port()
    log = tmp_path / f"serve-{port}.log"
    handle = log.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "forgeml", "serve", "--port", str(port), "--refresh", "0.2", *args],
        env=dict(os.environ),
        stdout=handle,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    handle.close()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                return Served(process, base, log)
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            _stop(process)
            pytest.fail(f"the model server did not start: {log.read_text()}")
        time.sleep(0.1)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture
def served(home: Path, tmp_path: Path) -> Iterator[Served]:
    register_versions(count=2)
    fm.serving.deploy("clf", "models:/clf@champion")
    server = _start(tmp_path)
    try:
        yield server
    finally:
        _stop(server.process)


def test_tritonclient_talks_to_the_server_unchanged(served: Served) -> None:
    import tritonclient.http as triton

    frame, _ = table(6, seed=4)
    expected = fm.load_model("models:/clf/1").predict(frame)
    client = triton.InferenceServerClient(served.base.removeprefix("http://"))
    try:
        assert client.is_server_live() and client.is_server_ready()
        assert client.is_model_ready("clf")
        metadata = client.get_model_metadata("clf")
        assert [i["name"] for i in metadata["inputs"]] == FEATURES
        inputs = []
        for name in FEATURES:
            tensor = triton.InferInput(name, [6], "FP64")
            tensor.set_data_from_numpy(frame[name].to_numpy(np.float64))  # binary by default
            inputs.append(tensor)
        result = client.infer("clf", inputs)
        assert result.as_numpy("predict").tolist() == expected.tolist()
        as_json = [triton.InferRequestedOutput("predict", binary_data=False)]
        json_inputs = []
        for name in FEATURES:
            tensor = triton.InferInput(name, [6, 1], "FP64")
            tensor.set_data_from_numpy(
                frame[name].to_numpy(np.float64).reshape(6, 1), binary_data=False
            )
            json_inputs.append(tensor)
        result = client.infer("clf", json_inputs, outputs=as_json, request_id="r-7")
        assert result.as_numpy("predict").tolist() == expected.tolist()
        assert result.get_response()["id"] == "r-7"
        with pytest.raises(triton.InferenceServerException, match="field 'f4' is missing"):
            client.infer("clf", inputs[:4])
    finally:
        client.close()


def test_access_log_lines_are_json_with_request_ids(served: Served) -> None:
    reply = httpx.post(
        f"{served.base}/v1/deployments/clf/predict",
        json={"inputs": record()},
        headers={"x-request-id": "trace-42"},
    )
    assert reply.headers["x-request-id"] == "trace-42"
    deadline = time.monotonic() + 5
    while "trace-42" not in served.log.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    lines = [json.loads(x) for x in served.log.read_text().splitlines() if "trace-42" in x]
    assert lines[0]["status"] == 200 and lines[0]["deployment"] == "clf"
    assert lines[0]["model"] == "clf" and lines[0]["version"] == 1 and lines[0]["latency_ms"] > 0


def test_cli_changes_reach_the_running_server(served: Served) -> None:
    cli("deployments", "set", "clf", "--policy", "canary", "--challenger", "models:/clf/2",
        "--weight", "100", "--reason", "try v2")  # fmt: skip
    listed = cli_json("deployments", "list")
    assert listed[0]["spec"]["weight"] == 100 and listed[0]["revision"] == 2
    deadline = time.monotonic() + 10
    version = 1
    while version != 2 and time.monotonic() < deadline:
        reply = httpx.post(f"{served.base}/v1/deployments/clf/predict", json={"inputs": record()})
        version = reply.json()["version"]
        time.sleep(0.05)
    assert version == 2
    history = cli_json("deployments", "history", "clf")
    assert history[-1]["reason"] == "try v2"
    bad = cli("deployments", "set", "clf", "--weight", "250", check=False)
    assert bad.returncode == 2 and "weight is a percentage" in bad.stderr
    missing = cli("deployments", "set", "other", "--weight", "5", check=False)
    assert missing.returncode == 2 and "give --model" in missing.stderr
    unknown = cli("deployments", "set", "x", "--model", "models:/nope/1", check=False)
    assert unknown.returncode == 2 and "models:/nope/1" in unknown.stderr


def test_sigterm_lets_in_flight_requests_finish(served: Served) -> None:
    frame, _ = table(150_000, seed=2)
    arrow = pa.Table.from_pandas(frame, preserve_index=False)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, arrow.schema) as writer:
        writer.write_table(arrow)
    body = sink.getvalue().to_pybytes()
    results: list[int] = []

    def post() -> None:
        reply = httpx.post(
            f"{served.base}/v1/deployments/clf/predict",
            content=body,
            headers={"content-type": "application/vnd.apache.arrow.stream"},
            timeout=60,
        )
        results.append(reply.status_code)
        if reply.status_code == 200:
            results.append(len(reply.json()["outputs"]))

    thread = threading.Thread(target=post)
    thread.start()
    time.sleep(0.3)  # the request is in the server
    served.process.send_signal(signal.SIGTERM)
    thread.join(60)
    assert results == [200, 150_000]
    # uvicorn re-raises the signal once it has shut down cleanly
    assert served.process.wait(timeout=30) in (0, -signal.SIGTERM)
    # the rows it scored reached the prediction log before the process ended
    assert fm.serving.predictions("clf").num_rows == 150_000


def test_workers_share_metrics(home: Path, tmp_path: Path) -> None:
    register_versions(count=1)
    server = _start(tmp_path, "--model", "models:/clf@champion", "--workers", "2")
    try:
        with httpx.Client(base_url=server.base) as client:
            for _ in range(40):
                reply = client.post("/v1/deployments/clf/predict", json={"inputs": record()})
                assert reply.status_code == 200
            totals = set()
            for _ in range(6):  # whichever worker answers reports the whole server
                text = client.get("/metrics").text
                line = next(
                    x for x in text.splitlines()
                    if x.startswith("forgeml_serving_requests_total{") and 'status="200"' in x
                )  # fmt: skip
                totals.add(float(line.rsplit(" ", 1)[1]))
            assert totals == {40.0}
    finally:
        _stop(server.process)
