"""`worldsim serve`: pages, files, security, play over the WebSocket, generation (Starlette's test client), and the
same in a real headless browser (Debian's chromium driven by selenium; skipped where chromium is not installed,
unless WORLDSIM_REQUIRE_BROWSER=1, which CI sets)."""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("starlette")
from starlette.testclient import TestClient

from worldsim.web.app import create_app

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def served(tiny_pipeline, tmp_path_factory):
    """A served root: copies of the tiny pipeline's stores, VAE and causal model (copies: a link to the pipeline's
    folders would point out of the root and be refused), an evaluation report, a damaged store, a damaged
    checkpoint and a file of a kind the app never serves."""
    root = tmp_path_factory.mktemp("served")
    for name in ("store", "heldout", "vae", "causal"):
        shutil.copytree(tiny_pipeline[name], root / name)
    shutil.copytree(tiny_pipeline["store"], root / "store_views")  # a store with depth and segmentation views
    import zarr

    b = zarr.open_group(str(root / "store_views"), mode="r+")["b_32x32"]
    n = b["data/frames"].shape[0]
    b["data"].create_array("depth", data=np.linspace(0.5, 80, n * 32 * 32, dtype=np.float32).reshape(n, 32, 32))
    b["data"].create_array("segmentation", data=(np.arange(n * 32 * 32) % 7).astype(np.uint8).reshape(n, 32, 32))
    rep = root / "reports" / "eval1"
    rep.mkdir(parents=True)
    (rep / "eval.json").write_text(json.dumps({"checkpoint": {"path": str(root / "causal"), "step": 2}}))
    (rep / "report.md").write_text("# Report\n\n| metric | model |\n|---|---|\n| next-frame PSNR | 12.5 |\n\n"
                                   "![plot](psnr.png)\n")
    _png_file(rep / "psnr.png", np.zeros((8, 8, 3), np.uint8))
    bad = root / "broken_store"
    bad.mkdir()
    (bad / "zarr.json").write_text(json.dumps({"zarr_format": 3, "node_type": "group",
                                               "attributes": {"worldsim_schema": 1, "finalized": False}}))
    badck = root / "broken_run" / "checkpoints" / "step_1"
    badck.mkdir(parents=True)
    (badck.parent / "latest").write_text("step_1")
    (badck / "meta.json").write_text("{not json")
    evil = root / "evil_run" / "checkpoints" / "step_1"
    evil.mkdir(parents=True)
    (evil.parent / "latest").write_text("step_1")
    (evil / "meta.json").write_text(json.dumps({"kind": "<script>alert(1)</script>", "step": 1}))
    (root / "secret.pkl").write_bytes(b"not served")
    return root


def _png_file(path: Path, arr: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(arr).save(path)


def _png_bytes(arr: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def client(served, tmp_path_factory):
    app = create_app([str(served)], out=tmp_path_factory.mktemp("generated"), max_sessions=1)
    with TestClient(app) as c:
        yield c


def test_catalog_finds_stores_runs_and_reports(client):
    cat = client.get("/api/catalog").json()
    assert {"0/store", "0/heldout", "0/broken_store"} <= set(cat["store"])
    assert {"0/causal", "0/vae", "0/broken_run"} <= set(cat["run"])
    assert cat["eval"] == ["0/reports/eval1"]


def test_dataset_pages(client, served):
    import store as S

    page = client.get("/")
    assert page.status_code == 200 and 'href="/dataset/0/store"' in page.text
    assert "not finalized" in page.text  # the broken store is listed with its error; the page still works
    digest = S.open_store(str(served / "store")).attrs["digest"]
    card = client.get("/dataset/0/store")
    assert card.status_code == 200 and digest in card.text and "episode seeds" in card.text
    assert card.text.count('href="/episode/0/store?episode=') == 3  # one row per episode
    ep = client.get("/episode/0/store?episode=1")
    assert ep.status_code == 200
    data = json.loads(ep.text.split('id="episode-data">')[1].split("</script>")[0])
    real = S.read_episode(str(served / "store"), 1)
    assert data["length"] == len(real["frames"]) and data["action_keys"] == real["action_keys"]
    assert len(data["actions"]) == data["length"] and data["segments"][0]["short"] == real["segment_short"][0]
    assert "forward" in data["buttons"] and "camera_yaw" not in data["buttons"]
    strip = client.get("/api/frames/0/store?episode=1&start=2&count=5")
    from PIL import Image

    img = np.asarray(Image.open(io.BytesIO(strip.content)))
    assert strip.headers["content-type"] == "image/png" and img.shape == (5 * 32, 32, 3)
    assert np.array_equal(img.reshape(5, 32, 32, 3), real["frames"][2:7])  # lossless, the stored frames


def test_depth_and_segmentation_views(client):
    from PIL import Image

    page = client.get("/dataset/0/store_views")
    assert "depth, segmentation" in page.text
    ep = client.get("/episode/0/store_views?episode=0")
    assert '<option value="depth">' in ep.text and '<option value="segmentation">' in ep.text
    depth = np.asarray(Image.open(io.BytesIO(client.get("/api/frames/0/store_views?episode=0&count=2&view=depth")
                                             .content)))
    assert depth.shape == (64, 32, 3) and (depth[..., 0] == depth[..., 1]).all() and depth.std() > 0  # a grey ramp
    seg = client.get("/api/frames/0/store_views?episode=0&count=1&view=segmentation")
    assert len(np.unique(np.asarray(Image.open(io.BytesIO(seg.content))).reshape(-1, 3), axis=0)) == 7
    assert client.get("/api/frames/0/store_views?episode=0&view=actions").status_code == 422


def test_model_and_report_pages(client):
    page = client.get("/model/0/causal")
    assert page.status_code == 200
    assert 'href="/dataset/0/store"' in page.text  # the training store, linked by its digest
    assert "<svg" in page.text and "loss" in page.text  # training curves from metrics.jsonl
    assert 'href="/eval/0/reports/eval1"' in page.text and 'href="/play?ckpt=0/causal"' in page.text
    rep = client.get("/eval/0/reports/eval1")
    assert rep.status_code == 200 and "<td>12.5</td>" in rep.text and 'src="/file/0/reports/eval1/psnr.png"' in rep.text
    assert client.get("/file/0/reports/eval1/psnr.png").headers["content-type"] == "image/png"
    assert client.get("/models").status_code == 200


def test_bad_items_show_an_error_and_the_server_goes_on(client):
    bad = client.get("/dataset/0/broken_store")
    assert bad.status_code == 422 and 'class="error"' in bad.text and "not finalized" in bad.text
    badrun = client.get("/model/0/broken_run")
    assert badrun.status_code == 422 and "unreadable" in badrun.text
    assert client.get("/episode/0/store?episode=99").status_code == 422
    assert client.get("/episode/0/store?episode=abc").status_code == 422
    assert client.get("/").status_code == 200
    for page in ("/models", "/model/0/evil_run"):  # what files say is text, never markup
        text = client.get(page).text
        assert "<script>alert(1)" not in text and "&lt;script&gt;alert(1)" in text, page


@pytest.mark.parametrize("path", ["/file/0/..%2f..%2fetc%2fpasswd", "/file/0/%2e%2e/%2e%2e/etc/passwd",
                                  "/file/0//etc/passwd", "/dataset/0/..%2f..", "/file/1/x.png", "/file/0/secret.pkl",
                                  "/file/0/link_out/passwd", "/dataset/0/link_out", "/api/frames/0/..%2fstore"])
def test_paths_outside_the_roots_are_refused(client, served, path):
    link = served / "link_out"
    if not link.exists():
        link.symlink_to("/etc")
    r = client.get(path)
    assert r.status_code in (403, 404), (path, r.status_code)
    assert "root:" not in r.text  # nothing of /etc/passwd


def test_missing_file_is_404(client):
    assert client.get("/file/0/reports/eval1/nothing.png").status_code == 404


def _frames(ws, n_sides):
    stats = ws.receive_json()
    assert stats["type"] == "frame", stats
    raw = ws.receive_bytes()
    return stats["stats"], np.frombuffer(raw, np.uint8).reshape(n_sides, 32, 32, 3)


def test_play_steps_engine_and_dream_with_the_same_keys(client):
    with client.websocket_connect("/ws/play") as ws:
        ws.send_json({"type": "start", "engine": "voxel", "task": "explore", "seed": 5, "ckpt": "0/causal"})
        ready = ws.receive_json()
        assert ready["type"] == "ready" and ready["dream"] and (ready["width"], ready["height"]) == (32, 32)
        assert ready["decoder"] == "full"  # no light decoder distilled for this model
        _, first = _frames(ws, 2)
        assert np.array_equal(first[0], first[1]) or np.abs(first[0].astype(int) - first[1]).mean() < 40
        for _ in range(3):
            ws.send_json({"type": "step", "keys": ["arrowleft"], "mouse": [0, 0]})
            stats, now = _frames(ws, 2)
        assert stats["engine"]["frame"] == 3 and stats["dream"]["frame"] == 3
        assert np.abs(now[0].astype(int) - first[0]).mean() > 1  # the engine turned
        assert not np.array_equal(now[1], first[1])  # the dream stepped
        with client.websocket_connect("/ws/play") as other:  # max_sessions=1
            msg = other.receive_json()
            assert msg["type"] == "error" and "max_sessions=1" in msg["message"]
        ws.send_json({"type": "resync"})
        stats, again = _frames(ws, 2)
        assert stats["dream"]["episode"] == 2 and stats["dream"]["frame"] == 3
    app = client.app.state.worldsim
    for _ in range(100):  # the session's engine and model are closed on a thread after the disconnect
        if app.sessions.active == 0:
            break
        time.sleep(0.05)
    assert app.sessions.active == 0


def test_play_engine_only_and_bad_requests(client):
    with client.websocket_connect("/ws/play") as ws:
        ws.send_json({"type": "start", "engine": "physics", "seed": 1})
        ready = ws.receive_json()
        assert ready["type"] == "ready" and not ready["dream"]
        stats = ws.receive_json()
        assert set(stats["stats"]) == {"engine"}
        assert len(ws.receive_bytes()) == ready["width"] * ready["height"] * 3
        ws.send_json({"type": "step", "keys": ["w", "arrowleft"], "mouse": ["nan", 1e9]})
        assert ws.receive_json()["stats"]["engine"]["frame"] == 1
        ws.receive_bytes()
        ws.send_json({"type": "jump"})
        assert "unknown message type" in ws.receive_json()["message"]
    for start, words in [({"type": "start", "engine": "doom"}, "unknown engine"),
                         ({"type": "start", "engine": "voxel", "ckpt": "0/../etc"}, "leaves the served"),
                         ({"type": "start", "engine": "voxel", "task": "fly"}, "not a task of voxel"),
                         ({"type": "hello"}, "first message")]:
        time.sleep(0.2)  # the previous session's slot frees on its closing thread
        with client.websocket_connect("/ws/play") as ws:
            ws.send_json(start)
            msg = ws.receive_json()
            assert msg["type"] == "error" and words in msg["message"], (start, msg)


def test_generate_text_and_image_to_video_with_provenance(client, served):
    from worldsim.model import checkpoint as C

    digest = C.digest(C.resolve(served / "causal"))
    out = client.post("/api/generate", json={"ckpt": "0/causal", "mode": "t2v", "prompt": "plains", "frames": 4,
                                             "steps": 2, "seed": 3})
    assert out.status_code == 200, out.text
    res = out.json()
    assert res["provenance"]["checkpoint_digest"] == digest and res["provenance"]["prompt"] == "plains"
    assert client.get(res["video"]).headers["content-type"] == "video/mp4"
    assert client.get(res["strip"]).status_code == 200
    again = client.post("/api/generate", json={"ckpt": "0/causal", "mode": "t2v", "prompt": "plains", "frames": 4,
                                               "steps": 2, "seed": 3}).json()
    assert client.get(again["strip"]).content == client.get(res["strip"]).content  # same seed, same frames
    upload = "data:image/png;base64," + base64.b64encode(_png_bytes(np.full((48, 40, 3), 90, np.uint8))).decode()
    i2v = client.post("/api/generate", json={"ckpt": "0/causal", "mode": "i2v", "image": upload, "frames": 3,
                                             "steps": 1}).json()
    assert i2v["frames"] == 3 and i2v["provenance"]["image"]["resized_to"] == [32, 32]
    stored = client.post("/api/generate", json={"ckpt": "0/causal", "mode": "i2v", "store": "0/store", "episode": 0,
                                                "frame": 2, "frames": 3, "steps": 1}).json()
    assert stored["provenance"]["image"]["episode"] == 0 and "resized_to" not in stored["provenance"]["image"]
    for body, status in [({"ckpt": "0/causal", "mode": "i2v", "image": "data:image/png;base64,@@@"}, 422),
                         ({"ckpt": "0/causal", "mode": "zoom"}, 422), ({"ckpt": "0/../x", "mode": "t2v"}, 403),
                         ({"ckpt": "0/causal", "mode": "t2v", "prompt": "qqqq zzzz"}, 422)]:
        r = client.post("/api/generate", json=body)
        assert r.status_code == status and r.json()["error"], (body, r.text)


def test_serve_command_refuses_bad_input(capsys, tmp_path):
    from wm_helpers import one_line_error

    from worldsim.cli import main as cli

    assert "is not a folder" in one_line_error(capsys, cli, ["serve", f"root={tmp_path / 'nope'}"])
    assert "TCP port" in one_line_error(capsys, cli, ["serve", f"root={tmp_path}", "port=70000"])
    assert "root= is required" in one_line_error(capsys, cli, ["serve"])


# ---- in a real browser -----------------------------------------------------------------------------------------

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")


@pytest.fixture(scope="module")
def browser_server(served, tmp_path_factory):
    if not (CHROMIUM and DRIVER):
        if os.environ.get("WORLDSIM_REQUIRE_BROWSER") == "1":
            pytest.fail("chromium and chromedriver are required (scripts/setup.sh installs them)")
        pytest.skip("chromium / chromedriver not installed (scripts/setup.sh installs them)")
    pytest.importorskip("selenium")
    from worldsim.web.app import serve_in_thread

    base, server = serve_in_thread(create_app([str(served)], out=tmp_path_factory.mktemp("generated_b"),
                                              max_sessions=2))
    yield base
    server.should_exit = True


@pytest.fixture(scope="module")
def driver(browser_server):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,1000"):
        opts.add_argument(arg)
    d = webdriver.Chrome(service=Service(executable_path=DRIVER), options=opts)
    yield d
    d.quit()


def _wait(fn, seconds=60.0, every=0.1):
    end = time.time() + seconds
    while time.time() < end:
        value = fn()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {seconds} s")


def test_browser_lists_a_store_and_plays_an_episode(driver, browser_server):
    from selenium.webdriver.common.by import By

    driver.get(browser_server + "/")
    assert driver.find_element(By.CSS_SELECTOR, 'a[href="/dataset/0/store"]').text.endswith("/store")
    driver.find_element(By.CSS_SELECTOR, 'a[href="/dataset/0/store"]').click()
    driver.find_element(By.CSS_SELECTOR, 'a[href="/episode/0/store?episode=0"]').click()
    counter = driver.find_element(By.ID, "frame-counter")
    first = int(_wait(lambda: counter.get_attribute("data-frame")))
    _wait(lambda: int(counter.get_attribute("data-frame") or 0) > first + 2, 20)  # it plays
    driver.find_element(By.ID, "play").click()  # pause, then click an event / the timeline to jump
    events = driver.find_elements(By.CSS_SELECTOR, "#events li")
    if events:
        events[-1].click()
        want = events[-1].get_attribute("data-step")
        _wait(lambda: counter.get_attribute("data-frame") == want, 10)
    overlay = driver.find_element(By.ID, "overlay").text
    assert "forward" in overlay and "camera_yaw" in overlay


def _canvas(driver, cid):
    return driver.execute_script(f"return document.getElementById('{cid}').toDataURL()")


def test_browser_key_press_changes_engine_and_dream(driver, browser_server):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    driver.get(browser_server + "/play?ckpt=0/causal")
    Select(driver.find_element(By.ID, "engine")).select_by_visible_text("voxel")
    assert Select(driver.find_element(By.ID, "ckpt")).first_selected_option.get_attribute("value") == "0/causal"
    driver.find_element(By.ID, "start").click()
    engine = driver.find_element(By.ID, "engine-view")
    _wait(lambda: engine.get_attribute("data-frame") is not None and driver.find_element(By.ID, "dream-stats").text)
    time.sleep(1.0)  # steps with no key: the engine's view holds still
    still_engine, still_dream = _canvas(driver, "engine-view"), _canvas(driver, "dream-view")
    n0 = int(engine.get_attribute("data-frame"))
    engine.click()  # focus (pointer lock is refused headless: the keys still go to the page)
    ActionChains(driver).key_down(Keys.ARROW_LEFT).pause(1.5).key_up(Keys.ARROW_LEFT).perform()
    _wait(lambda: int(engine.get_attribute("data-frame")) > n0 + 3, 30)
    assert _canvas(driver, "engine-view") != still_engine  # the engine turned
    assert _canvas(driver, "dream-view") != still_dream  # and the dream stepped with it
    stats = driver.find_element(By.ID, "engine-stats").text
    assert "steps/s" in stats and "reward" in stats


def test_browser_refuses_a_traversal_url(driver, browser_server):
    driver.get(browser_server + "/file/0/..%2f..%2f..%2fetc%2fpasswd")
    body = driver.find_element("tag name", "body").text
    assert "Refused" in body and "root:" not in body
