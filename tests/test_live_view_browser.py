"""The live view in a real headless browser: Debian's chromium, driven by Playwright, opens the web viewer
that display_node serves, connects to its data and draws the camera the graph publishes, with no console
error. Skipped, with the reason, where chromium or Playwright is absent (./run-tests installs chromium with
scripts/setup_browser.sh where it can).

This machine has no internet: the viewer's requests to the outside (its examples list, a web font, its
usage statistics) are answered empty by the test in the internet's place, so the console errors left are
the page's own."""

from __future__ import annotations

import re
import shutil
import socket
import threading
import time

import numpy as np
import pytest
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Header

from tests.ros_harness import wait_until

pytestmark = pytest.mark.ros
CHROMIUM = shutil.which("chromium")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (scripts/setup_browser.sh)")
def test_the_web_viewer_connects_and_draws_the_camera_in_a_headless_browser(probe, node_process, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    web, grpc = free_port(), free_port()
    node = node_process("display_node", params={"cameras": ["top"], "sink": "web", "web_port": web,
                                                "grpc_port": grpc, "max_image_rate_hz": 0.0})
    assert node.wait_for_log("in a browser", 30), node.log()
    url = re.search(r"open (http://\S+) in a browser", node.log())[1]
    assert f":{web}/?url=rerun%2Bhttp://" in url and f":{grpc}/proxy" in url

    image = probe.publisher(Image, "cameras/top/image_raw")
    joints = probe.publisher(JointState, "joint_states")
    probe.wait_for_subscribers(image, timeout=20)
    frame = np.zeros((48, 64, 3), np.uint8)
    frame[:, :40] = (255, 0, 0)  # a red block the screenshot must show
    running = True

    def publish() -> None:
        k = 0
        while running:
            header = Header(stamp=probe.node.get_clock().now().to_msg())
            joints.publish(JointState(header=header, name=["j0", "j1"], position=[np.sin(0.1 * k), np.cos(0.1 * k)]))
            image.publish(Image(header=header, height=48, width=64, encoding="rgb8", step=192, data=frame.tobytes()))
            k += 1
            time.sleep(0.05)

    feeder = threading.Thread(target=publish, daemon=True)
    feeder.start()
    errors: list[str] = []
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                        args=["--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"])
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            local = re.compile(r"^https?://(127\.0\.0\.1|localhost)[:/]")
            page.route(lambda u: not local.match(u), lambda route: route.fulfill(
                status=200, body="[]" if route.request.url.endswith(".json") else "",
                content_type="application/json" if route.request.url.endswith(".json") else "text/plain"))
            page.goto(url)
            page.wait_for_selector("canvas", timeout=60_000)
            shot = tmp_path / "viewer.png"

            def red_drawn() -> bool:
                import cv2

                page.screenshot(path=str(shot))
                rgb = cv2.imread(str(shot))[..., ::-1].astype(int)
                red = (rgb[..., 0] > 200) & (rgb[..., 1] < 60) & (rgb[..., 2] < 60)
                return int(red.sum()) > 2000

            assert wait_until(red_drawn, 60, 1.0), f"the camera never appeared (see {shot}); console: {errors}"
            browser.close()
    finally:
        running = False
        feeder.join()
    assert errors == []
