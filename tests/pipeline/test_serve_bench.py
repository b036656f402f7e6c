"""serve-bench: a real browser standing in for a phone measures a TF.js artifact; bad requests store nothing."""

import json
import urllib.error
import urllib.request

import pytest

from device_runtime.device_scripts.edge_bench import Protocol
from pipeline.results import fetch_measurements, insert_measurement, open_store
from pipeline.serve_bench import BenchServer, open_artifacts

QUICK = Protocol(warmup_runs=2, min_runs=20, min_duration_s=0.2)


@pytest.fixture
def served(artifacts, tmp_path):
    store = tmp_path / "results.sqlite"

    def keep(measurement):
        with open_store(store) as connection:
            return insert_measurement(connection, measurement.to_json())

    server = BenchServer(open_artifacts([artifacts["tfjs-fp32"]]), keep, QUICK)
    url = server.start()
    yield server, url, store
    server.stop()


def _request(url: str, body: bytes | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"} if body else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _declared_oversize(url: str) -> int:
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    connection.putrequest("POST", parts.path)
    connection.putheader("Content-Type", "application/json")
    connection.putheader("Content-Length", str(3 * 1024 * 1024))
    connection.endheaders()
    status = connection.getresponse().status
    connection.close()
    return status


def _rows(store):
    if not store.exists():
        return []
    with open_store(store) as connection:
        return fetch_measurements(connection)


def test_requests_without_the_token_or_with_a_bad_body_store_nothing(served):
    server, url, store = served
    root = url.rsplit("/", 2)[0]
    assert _request(root + "/")[0] == 403
    assert _request(root + "/plan.json")[0] == 403
    assert _request(f"{root}/not-the-token/plan.json")[0] == 403
    assert _request(url + "plan.json")[0] == 200
    assert _request(url + "model/0/manifest.json")[0] == 404  # only the files the manifest lists as the model's
    assert _request(url + "model/0/../../../../etc/passwd")[0] == 404
    assert _request(url + "model/0/model.json")[0] == 200
    assert _request(url + "result", b"{not json")[0] == 400
    assert _request(url + "result", json.dumps({"artifact": 0, "backend": "cuda"}).encode())[0] == 422
    assert _declared_oversize(url + "result") == 413  # refused from its Content-Length, before reading it
    good_shape = {"artifact": 0, "backend": "wasm", "device": "d", "latencies_ms": [1.0], "load_ms": 1.0,
                  "first_inference_ms": 1.0, "bench_wall_ms": 1.0, "info": {}, "predictions": [0]}
    status, reply = _request(url + "result", json.dumps(good_shape).encode())
    assert status == 422 and b"predictions must be 256 integers" in reply
    assert _rows(store) == [] and server.stored == []


@pytest.mark.browser
def test_a_browser_measures_wasm_and_webgl_and_the_rows_are_measured(served):
    from playwright.sync_api import sync_playwright

    from device_runtime.chromium import FLAGS, find_chromium

    server, url, store = served
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(find_chromium()), headless=True, args=list(FLAGS))
        try:
            page = browser.new_page()
            page.goto(url + "?device=loopback-phone")
            page.wait_for_selector("body[data-state=ready]", timeout=60_000)
            assert page.is_checked("#backend-wasm") and page.is_checked("#backend-webgl")
            if page.is_enabled("#backend-webgpu"):  # SwiftShader's WebGPU needs --enable-unsafe-webgpu here
                page.uncheck("#backend-webgpu")
            page.click("#start")
            page.wait_for_selector("body[data-state=done]", timeout=300_000)
            log = page.inner_text("#log")
        finally:
            browser.close()
    rows = _rows(store)
    assert len(rows) == 2, log
    assert {row["delegate_used"] for row in rows} == {"wasm", "webgl"}
    for row in rows:
        context = json.loads(row["context_json"])
        assert row["kind"] == "measured" and row["device_profile"] == "loopback-phone"
        assert row["runtime"] == "tfjs-browser" and row["target"] == "tfjs" and row["status"] == "ok"
        assert row["runs"] >= 20 and 0 < row["latency_ms_p50"] <= row["latency_ms_p99"]
        assert row["accuracy"] >= 0.95 and "Chrome" in context["user_agent"]
        assert context["cross_origin_isolated"] is True and context["hardware_concurrency"] >= 1
    webgl = next(json.loads(row["context_json"]) for row in rows if row["delegate_used"] == "webgl")
    assert "SwiftShader" in webgl["backend_info"]["renderer"] and webgl["gpu"] == "software GPU (SwiftShader)"
