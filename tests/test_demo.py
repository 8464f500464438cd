"""The Gradio demo as a real server on loopback: driven by gradio_client, by 20 concurrent requests,
by a real browser (Debian's chromium through Playwright), and probed for files it must not serve."""
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from conftest import ROOT, SHAPES_IMAGES, TINY_BUNDLE

pytest.importorskip("gradio", reason="the demo extra is not installed (pip install 'edgekd[demo]')")
from gradio_client import Client, handle_file  # noqa: E402

BUNDLE = TINY_BUNDLE
pytestmark = pytest.mark.usefixtures("runtime_fixture")
ARTIFACTS = ROOT / "test-artifacts"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def example(runtime_fixture):
    return next((runtime_fixture / "examples").glob("*.png"))


@pytest.fixture(scope="module")
def server(runtime_fixture):
    port = _free_port()
    process = subprocess.Popen([sys.executable, "demo/app.py", "--bundle", str(BUNDLE), "--port", str(port)], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except OSError:
            if process.poll() is not None:
                pytest.fail(f"the demo exited: {process.stdout.read()[-3000:]}")
            time.sleep(0.5)
    else:
        process.kill()
        pytest.fail("the demo did not start within 120 s")
    yield url
    process.terminate()
    process.wait(timeout=30)


@pytest.fixture
def corrupt_png(tmp_path, example):
    data = example.read_bytes()
    path = tmp_path / "corrupt.png"
    path.write_bytes(data[: len(data) // 3])
    return path


def test_prediction_returns_a_label_and_an_exit(server, example):
    preview, answer, per_exit, compare = Client(server, verbose=False, download_files=False).predict(handle_file(str(example)), api_name="/predict")
    assert answer.startswith("### ") and "exit" in answer and "ms" in answer
    assert [row[0] for row in per_exit["data"]] == [1, 2, 3, 4]
    assert [row[0] for row in compare["data"]] == ["early-exit student", "full student (last exit)"]
    for row in compare["data"]:  # both timed alike: a median of repeated calls inside its 10th-90th percentile spread
        low, high = (float(v) for v in row[5].split("-"))
        assert 0 < low <= row[4] <= high
    assert "medians of 21 calls" in answer


def test_bad_uploads_get_a_readable_error_and_the_server_keeps_serving(server, corrupt_png, tmp_path, example):
    client = Client(server, verbose=False, download_files=False)
    preview, answer, per_exit, _ = client.predict(handle_file(str(corrupt_png)), api_name="/predict")
    assert "cannot be classified" in answer and "truncated or damaged" in answer and preview is None
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(Exception, match="Invalid file type"):
        client.predict(handle_file(str(text)), api_name="/predict")
    assert "exit" in client.predict(handle_file(str(example)), api_name="/predict")[1]


def test_twenty_concurrent_requests_all_succeed(server):
    # Twenty different images: gradio caches uploads and outputs by content, and identical files sent at
    # the same instant race on one cache file; distinct requests are what concurrency means here.
    images = sorted((SHAPES_IMAGES / "test").glob("*/*.png"))[:20]
    client = Client(server, verbose=False, download_files=False)
    jobs = [client.submit(handle_file(str(path)), api_name="/predict") for path in images]  # all queued at once
    answers = [job.result(timeout=120)[1] for job in jobs]
    assert len(answers) == 20 and all("exit" in a for a in answers)


def test_tradeoff_control_reports_the_operating_point(server):
    stats, histogram, pareto = Client(server, verbose=False, download_files=False).predict(2.0, api_name="/tradeoff")
    assert "validation images" in stats and "mean latency" in stats and histogram and pareto


@pytest.mark.parametrize("path", ["../../etc/passwd", "/etc/passwd", ".env", str(BUNDLE / "manifest.json"),
                                  str(BUNDLE / "examples" / ".." / "full.onnx"), str(ROOT / "pyproject.toml")])
def test_files_outside_the_examples_are_refused(server, path):
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(urllib.request.Request(f"{server}gradio_api/file={path}"), timeout=10)
    assert err.value.code == 403


def test_the_bundle_examples_are_served(server, example):
    with urllib.request.urlopen(f"{server}gradio_api/file={example}", timeout=10) as response:
        assert response.status == 200 and response.read()[:4] == b"\x89PNG"


@pytest.mark.skipif(not shutil.which("chromium") and not os.path.exists("/usr/bin/chromium"),
                    reason="Debian's chromium is not installed (apt-get install -y chromium)")
def test_in_a_real_browser(server, corrupt_png, example):
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    ARTIFACTS.mkdir(exist_ok=True)
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium", args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 1100})
        page.goto(server, wait_until="networkidle")
        page.locator("#upload input[type=file]").set_input_files(str(example))
        page.wait_for_timeout(500)
        page.locator("#classify").click()
        answer = page.locator("#answer")
        answer.get_by_text("exit").first.wait_for(timeout=30000)
        text = answer.inner_text()
        assert "left at exit" in text and "ms" in text
        page.screenshot(path=str(ARTIFACTS / "demo.png"), full_page=True)
        page.locator("#upload button[aria-label='Clear']").click()  # back to an empty upload box
        page.locator("#upload input[type=file]").set_input_files(str(corrupt_png))
        page.wait_for_timeout(500)
        page.locator("#classify").click()
        answer.get_by_text("cannot be classified").first.wait_for(timeout=30000)
        assert "truncated or damaged" in answer.inner_text()
        page.screenshot(path=str(ARTIFACTS / "demo-error.png"), full_page=True)
        browser.close()
    assert (ARTIFACTS / "demo.png").stat().st_size > 10_000
