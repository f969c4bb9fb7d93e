"""Headless Chromium driven over ``--remote-debugging-pipe``: the DevTools protocol as
JSON messages separated by NUL bytes on file descriptors 3 (commands) and 4 (answers), so
no browser library and no debugging port are needed. Used by ``tools/viewer_check.py``.

``--no-sandbox`` because the checks run as root in containers; the page is a local viewer
on 127.0.0.1 only.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

_JS_BOX = ("(() => {{ const e = document.querySelector('[data-cy=\"{cy}\"]'); if (!e) "
           "return null; const r = e.getBoundingClientRect(); "
           "return [r.x, r.y, r.width, r.height]; }})()")


class CheckFailed(Exception):
    """What went wrong, in one line."""


class Chromium:
    """Headless Chromium driven over ``--remote-debugging-pipe`` (JSON messages separated
    by NUL bytes on file descriptors 3 and 4): one page, navigate, evaluate, screenshot."""

    def __init__(self, profile: Path, size: tuple[int, int] = (1600, 1000)) -> None:
        binary = shutil.which("chromium") or shutil.which("chromium-browser")
        if binary is None:
            raise CheckFailed("chromium is missing: apt-get install chromium")
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()
        # the browser reads commands on fd 3 and answers on fd 4: bash puts them there (dash
        # takes no file descriptor above 9)
        redirect = f'exec "$0" "$@" 3<&{to_child_r} 4>&{from_child_w}'
        args = ["bash", "-c", redirect, binary, "--headless=new", "--remote-debugging-pipe",
                "--no-sandbox", "--disable-gpu", "--use-angle=swiftshader",
                "--enable-unsafe-swiftshader", "--no-first-run", "--no-default-browser-check",
                "--disable-extensions",
                f"--user-data-dir={profile}", f"--window-size={size[0]},{size[1]}",
                "about:blank"]
        profile.mkdir(parents=True, exist_ok=True)
        self.log = profile.parent / "chromium.log"
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(args, pass_fds=(to_child_r, from_child_w),
                                            stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        os.close(to_child_r)
        os.close(from_child_w)
        self._buffer = b""
        self._next = 0
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget",
                                 {"targetId": target, "flatten": True})["sessionId"]
        self.call("Page.enable", session=True)
        self.call("Runtime.enable", session=True)
        self.call("Emulation.setDeviceMetricsOverride", {"width": size[0], "height": size[1],
                  "deviceScaleFactor": 1, "mobile": False}, session=True)

    def call(self, method: str, params: dict[str, Any] | None = None, *,
             session: bool = False) -> dict[str, Any]:
        self._next += 1
        message: dict[str, Any] = {"id": self._next, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self.session
        os.write(self._to_child, json.dumps(message).encode() + b"\0")
        while True:
            answer = self._read()
            if answer.get("id") == self._next:
                if "error" in answer:
                    raise CheckFailed(f"Chromium: {method}: {answer['error']}")
                return dict(answer.get("result", {}))

    def _read(self) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            chunk = os.read(self._from_child, 1 << 20)
            if not chunk:
                tail = self.log.read_text(errors="replace").strip().splitlines()[-1:]
                raise CheckFailed(f"Chromium closed its DevTools pipe ({' '.join(tail)})")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return dict(json.loads(message))

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", {"expression": expression,
                                                "returnByValue": True, "awaitPromise": True},
                           session=True)
        return result.get("result", {}).get("value")

    def click(self, cy: str) -> bool:
        """A real mouse click (OHIF's buttons ignore synthetic ones) on the middle of the
        element ``[data-cy=cy]``; False when there is none."""
        box = self.evaluate(_JS_BOX.format(cy=cy))
        if not box:
            return False
        x, y = box[0] + box[2] / 2, box[1] + box[3] / 2
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", {"type": kind, "x": x, "y": y,
                      "button": "left", "clickCount": 1}, session=True)
        return True

    def screenshot(self, path: Path) -> None:
        data = self.call("Page.captureScreenshot", {"format": "png"}, session=True)["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
        os.close(self._to_child)
        os.close(self._from_child)
