"""The runtime follows its pod over real HTTP: the track label on every metric, and a pod taken out of
serving (keep-alive connections closed: a client holding one is moved off within 1 s; readiness stays the model's)."""

from __future__ import annotations

import http.client
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from tests.runtime.conftest import ModelFiles
from tests.runtime.harness import RuntimeServer, start_server, wait_for
from tests.runtime.mirrorkit import json_request, value
from tests.runtime.podinfo_dir import PodInfoDir

from modeldeploy.runtime import contract as c

X = np.array([[0.5, -1.0, 2.0, 0.25]], dtype=np.float32)
MOVED_WITHIN_S = 1.0


@pytest.fixture
def pod(tmp_path: Path) -> PodInfoDir:
    p = PodInfoDir(tmp_path / "podinfo")
    p.set(labels={c.POD_LABEL_TRACK: "canary", "app": "clf"})
    return p


@pytest.fixture
def server(pod: PodInfoDir, model_files: ModelFiles, log_dir: Path) -> Iterator[RuntimeServer]:
    s = start_server(
        "clf",
        f"file://{model_files.classifier}",
        "--track",
        "stable",
        "--revision",
        "r1",
        log_dir=log_dir,
        env={c.ENV_POD_INFO: str(pod.root)},
    )
    yield s
    assert s.stop() == 0, s.log()


def infer(s: RuntimeServer) -> None:
    body, headers = json_request(X)
    assert httpx.post(s.url + c.infer_path("clf"), content=body, headers=headers).status_code == 200


def test_the_track_label_follows_the_pod(server: RuntimeServer, pod: PodInfoDir) -> None:
    infer(server)
    name = c.METRIC_REQUESTS_TOTAL
    assert value(server, name, track="canary", code="200") == 1  # the label, not --track stable
    assert value(server, name, track="stable") == 0
    assert httpx.get(server.url + c.model_path("clf")).json()["parameters"]["track"] == "canary"
    pod.set(labels={c.POD_LABEL_TRACK: "shadow"})
    wait_for(lambda: value(server, c.METRIC_MODEL_READY, track="shadow") == 1, 5, "the shadow track on /metrics")
    infer(server)
    infer(server)
    assert value(server, name, track="shadow", code="200") == 2
    assert value(server, name, track="canary", code="200") == 1  # the old track's series stays at its last value
    assert value(server, c.METRIC_MODEL_READY, track="canary") == 0  # gauges: the current track only
    assert value(server, c.METRIC_REQUEST_DURATION + "_count", track="shadow") == 2
    assert httpx.get(server.url + c.model_path("clf")).json()["parameters"]["track"] == "shadow"
    pod.set(labels={c.POD_LABEL_TRACK: None})  # label removed: back to --track
    wait_for(lambda: value(server, c.METRIC_MODEL_READY, track="stable") == 1, 5, "back to the flag's track")


def _closed_by_peer(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except BlockingIOError:
        return False
    finally:
        sock.setblocking(True)


def test_not_serving_closes_keepalive_connections_within_a_second(server: RuntimeServer, pod: PodInfoDir) -> None:
    host, port = "127.0.0.1", server.port
    body, headers = json_request(X)
    path = c.infer_path("clf")

    idle = http.client.HTTPConnection(host, port, timeout=5)  # holds its connection, silent after one request
    idle.request("POST", path, body, headers)
    r = idle.getresponse()
    r.read()
    assert r.status == 200 and r.getheader("connection") is None
    assert idle.sock is not None
    idle_sock = idle.sock

    # a busy client: one keep-alive connection, requests back to back; records each answer's connection header
    answers: list[tuple[float, int, str | None, int]] = []
    stop = threading.Event()

    def busy() -> None:
        conn = http.client.HTTPConnection(host, port, timeout=5)
        while not stop.is_set():
            conn.request("POST", path, body, headers)
            assert conn.sock is not None
            local_port = conn.sock.getsockname()[1]
            resp = conn.getresponse()
            resp.read()
            answers.append((time.monotonic(), resp.status, resp.getheader("connection"), local_port))
            if resp.getheader("connection") == "close":
                conn.close()
                return

    t = threading.Thread(target=busy, daemon=True)
    t.start()
    wait_for(lambda: len(answers) >= 5, 10, "the busy client's first answers")
    assert all(a[2] is None for a in answers)  # keep-alive while serving

    t_flip = time.monotonic()
    pod.set(labels={c.POD_LABEL_SERVING: c.SERVING_FALSE})
    wait_for(lambda: _closed_by_peer(idle_sock), MOVED_WITHIN_S, "the idle keep-alive connection to be closed")
    t.join(timeout=MOVED_WITHIN_S + 0.5)
    stop.set()
    assert not t.is_alive(), "the busy client's connection was not closed"
    t_close, status, connection, _ = answers[-1]
    assert status == 200 and connection == "close"
    assert t_close - t_flip < MOVED_WITHIN_S
    assert len({a[3] for a in answers}) == 1  # one connection throughout, then closed by the server
    # still Ready: the label alone keeps it out of the endpoint, and a shadow or a canary held at the contract
    # gate (out of serving too) must read Ready to be measured and read
    assert httpx.get(server.url + c.HEALTH_READY_PATH).status_code == 200
    # still answers (a request that reaches it anyway), with connection: close
    r2 = httpx.post(server.url + path, content=body, headers=headers)
    assert r2.status_code == 200 and r2.headers["connection"] == "close"
    idle.close()

    pod.set(labels={c.POD_LABEL_SERVING: c.SERVING_TRUE})

    def keeps_alive() -> bool:
        with httpx.Client() as client:
            r3 = client.post(server.url + path, content=body, headers=headers)
            return r3.status_code == 200 and "connection" not in r3.headers

    wait_for(keeps_alive, 5, "keep-alive back once serving again")
