"""Show detect's SR in OHIF, as a radiologist would see it, and save a screenshot.

1. Predict the real sample (``datasets/lung-pet-ct-dx/sample``) with the shipped real
   model (``weights/real-yolov8n``), ``--save sr``.
2. Start Orthanc with its DICOMweb plugin (a temporary configuration and storage, a free
   port on 127.0.0.1) and store the CT series and its SR.
3. Serve OHIF's built viewer (the ``dist/`` of the npm package ``@ohif/app``, version
   :data:`OHIF_VERSION`) on another free port, with its data source pointed at Orthanc
   through the same origin (``/dicom-web`` is passed through to Orthanc).
4. Open the study in headless Chromium (driven over ``--remote-debugging-pipe``: no
   browser library), load the SR into the viewport, wait until OHIF has drawn the SR's
   boxes on the CT and their "Certainty of Finding" label is in the page (not a fixed
   time), and save a screenshot.

Needs: ``apt-get install orthanc orthanc-dicomweb chromium``, and OHIF's dist::

    mkdir -p ~/.cache/detect && cd ~/.cache/detect && npm pack @ohif/app@3.13.2 \\
      && mkdir ohif-3.13.2 && tar xzf ohif-app-3.13.2.tgz -C ohif-3.13.2

usage: python tools/viewer_check.py [--ohif-dist DIR] [--out docs/img/ohif-real-sample.png]
Exit status 0 with the screenshot written, 1 with one line saying what failed.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from chromium_pipe import CheckFailed, Chromium
from orthanc_local import _DIRECT, free_port, http, orthanc

ROOT = Path(__file__).resolve().parents[1]
OHIF_VERSION = "3.13.2"
DEFAULT_DIST = Path.home() / ".cache" / "detect" / f"ohif-{OHIF_VERSION}" / "package" / "dist"


# --- OHIF ------------------------------------------------------------------------------

def ohif_config(name: str) -> str:
    """OHIF's configuration: its default viewer, one DICOMweb source on this origin."""
    source = {
        "namespace": "@ohif/extension-default.dataSourcesModule.dicomweb",
        "sourceName": "orthanc",
        "configuration": {
            "friendlyName": name, "name": "orthanc", "wadoUriRoot": "/wado",
            "qidoRoot": "/dicom-web", "wadoRoot": "/dicom-web",
            "qidoSupportsIncludeField": False, "imageRendering": "wadors",
            "thumbnailRendering": "wadors", "enableStudyLazyLoad": True,
            "supportsFuzzyMatching": False, "supportsWildcard": True,
            "omitQuotationForMultipartRequest": True, "bulkDataURI": {"enabled": True},
        },
    }
    config = {"routerBasename": None, "extensions": [], "modes": [], "showStudyList": True,
              "showLoadingIndicator": True, "showWarningMessageForCrossOrigin": False,
              "showCPUFallbackMessage": False, "defaultDataSourceName": "orthanc",
              "dataSources": [source], "investigationalUseDialog": {"option": "never"}}
    return f"window.config = {json.dumps(config, indent=1)};\n"


@contextmanager
def ohif_server(dist: Path, orthanc_rest: str) -> Iterator[str]:
    """OHIF's dist on 127.0.0.1 and a free port; ``/dicom-web/...`` passed to Orthanc;
    any other unknown path is the single-page app's index.html."""
    config = ohif_config("Orthanc (detect viewer check)").encode()

    class Handler(SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(dist), **kwargs)

        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            path = self.path.split("?")[0]
            if path.startswith(("/dicom-web/", "/wado")):
                return self._proxy()
            if path == "/app-config.js":
                return self._send(200, "application/javascript", config)
            if not (dist / path.lstrip("/")).is_file():
                self.path = "/index.html"
            return super().do_GET()

        def _proxy(self) -> None:
            request = urllib.request.Request(orthanc_rest + self.path)
            if self.headers.get("Accept"):
                request.add_header("Accept", self.headers["Accept"])
            try:
                with _DIRECT.open(request, timeout=120) as answer:
                    body, status = answer.read(), answer.status
                    kind = answer.headers.get("Content-Type", "application/octet-stream")
            except urllib.error.HTTPError as error:
                body, status = error.read(), error.code
                kind = error.headers.get("Content-Type", "text/plain")
            self._send(status, kind, body)

        def _send(self, status: int, kind: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


# --- the check --------------------------------------------------------------------------

_TEXT = "document.body ? document.body.innerText : ''"
_JS_SKIP_TOUR = ("(() => { const b = [...document.querySelectorAll('button, a, span')]"
                 ".find(e => e.innerText && e.innerText.trim() === 'Skip all'); "
                 "if (b) { b.click(); return true; } return false; })()")
_JS_OPEN_SR = ("(() => {{ const e = [...document.querySelectorAll("
               "'[data-cy=\"series-description-label\"]')].find(e => e.innerText.trim() === "
               "{name}); if (!e) return false; e.dispatchEvent(new MouseEvent('dblclick', "
               "{{bubbles: true}})); return true; }})()")
_JS_BOXES = ("[...document.querySelectorAll('svg.svg-layer polyline, svg.svg-layer path')]"
             ".filter(e => (e.getAttribute('points') || e.getAttribute('d') || '').length > 8)"
             ".length")


def poll(browser: Chromium, what: str, test: Any, seconds: float) -> Any:
    """Evaluate ``test(browser)`` every 0.2 s until it is truthy (the tour popup, which
    may come at any time, is closed on the way)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        browser.evaluate(_JS_SKIP_TOUR)
        value = test(browser)
        if value:
            return value
        time.sleep(0.2)
    raise CheckFailed(f"OHIF: waited {seconds:g} s for {what}")


def viewport_drawn(png: bytes) -> bool:
    """Whether the screenshot's viewport holds an image (not a black or uniform area)."""
    import cv2
    import numpy as np

    image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_GRAYSCALE)
    height, width = image.shape
    view = image[height // 5: height * 4 // 5, width // 3: width * 5 // 6]
    return bool(view.std() > 20 and (view > 60).mean() > 0.2)


def show_sr(browser: Chromium, url: str, sr_name: str, target: str, detections: int,
            out: Path, seconds: float) -> None:
    """Open the study, load the SR into the viewport, step to the detection whose label
    holds ``target``, wait until it is drawn, and save the screenshot to ``out``."""
    browser.call("Page.navigate", {"url": url}, session=True)
    poll(browser, "the study browser", lambda b: b.evaluate(_JS_OPEN_SR.format(
        name=json.dumps(sr_name))), seconds)
    poll(browser, "the SR's first box", lambda b: "Certainty of Finding" in b.evaluate(_TEXT)
         and b.evaluate(_JS_BOXES) > 0, seconds)
    browser.click("no-hydrate-btn")  # read the SR, do not track its measurements
    for _ in range(detections):
        if target in browser.evaluate(_TEXT):
            break
        before = browser.evaluate(_TEXT)
        browser.click("viewport-action-arrows-right")
        poll(browser, "the next box", lambda b, old=before: b.evaluate(_TEXT) != old, seconds)
    poll(browser, f"the box labelled {target!r}", lambda b: target in b.evaluate(_TEXT)
         and b.evaluate(_JS_BOXES) > 0, seconds)

    def drawn(b: Chromium) -> bytes | None:
        data = base64.b64decode(b.call("Page.captureScreenshot", {"format": "png"},
                                       session=True)["data"])
        return data if viewport_drawn(data) else None

    png = poll(browser, "the CT slice to be drawn", drawn, seconds)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(_smaller(png, width=1280))


def _smaller(png: bytes, *, width: int) -> bytes:
    """The screenshot scaled down to ``width`` px (a README image, not a diagnosis)."""
    import cv2
    import numpy as np

    image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    scale = width / image.shape[1]
    if scale < 1:
        image = cv2.resize(image, (width, round(image.shape[0] * scale)),
                           interpolation=cv2.INTER_AREA)
    ok, data = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    if not ok:
        raise CheckFailed("the screenshot could not be encoded")
    return bytes(data.tobytes())


def predict_sample(work: Path, sample_root: Path, weights: Path) -> tuple[Path, Path, Any]:
    """detect predict --save json,sr on the sample; (DICOM root, SR file, predictions)."""
    sys.path.insert(0, str(ROOT))
    from detect.predict.run import PredictConfig, predict
    from detect.predictions import read_predictions
    from detect.shipped import real_sample

    sample = real_sample(sample_root)
    out = work / "predictions"
    predict(PredictConfig(sources=(sample.dicom_root,), weights=weights, out=out,
                          save=("json", "sr"), device="cpu"))
    srs = sorted((out / "sr").rglob("*.dcm"))
    if len(srs) != 1:
        raise CheckFailed(f"expected one SR for the sample's one CT series, got {len(srs)}")
    annotated = {p.stem for p in sample.annotation_root.rglob("*.xml")}
    records = read_predictions(out / "predictions.json")
    return sample.dicom_root, srs[0], (records, annotated)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ohif-dist", type=Path, default=DEFAULT_DIST)
    parser.add_argument("--sample", type=Path, default=ROOT / "datasets/lung-pet-ct-dx/sample")
    parser.add_argument("--weights", type=Path, default=ROOT / "weights/real-yolov8n")
    parser.add_argument("--out", type=Path, default=ROOT / "docs/img/ohif-real-sample.png")
    parser.add_argument("--timeout", type=float, default=120.0,
                        help="seconds to wait for each step in the viewer")
    args = parser.parse_args(argv)
    if not (args.ohif_dist / "index.html").is_file():
        print(f"error: no OHIF build in {args.ohif_dist}; see this script's docstring",
              file=sys.stderr)
        return 1
    start = time.monotonic()
    try:
        with tempfile.TemporaryDirectory(prefix="detect-viewer-") as tmp:
            work = Path(tmp)
            dicom_root, sr_path, (records, annotated) = predict_sample(work, args.sample,
                                                                       args.weights)
            on_truth = [r for r in records if r.sop_instance_uid in annotated] or records
            best = max(on_truth, key=lambda r: r.score)
            target = f"Certainty of Finding: {100 * best.score:.2f}"
            import pydicom

            sr = pydicom.dcmread(sr_path)
            with orthanc(work / "orthanc") as rest:
                for path in [*sorted(dicom_root.rglob("*.dcm")), sr_path]:
                    http("POST", f"{rest}/instances", path.read_bytes())
                with ohif_server(args.ohif_dist, rest) as site:
                    browser = Chromium(work / "chromium")
                    try:
                        show_sr(browser, f"{site}/viewer?StudyInstanceUIDs={sr.StudyInstanceUID}",
                                str(sr.SeriesDescription), target, len(records), args.out,
                                args.timeout)
                    finally:
                        browser.close()
    except CheckFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    where = ("a slice the archive annotated" if best.sop_instance_uid in annotated
             else "the best score")
    print(f"{args.out}: OHIF {OHIF_VERSION} shows detect's SR box ({target} %, {where}) on "
          f"its CT slice, {time.monotonic() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
