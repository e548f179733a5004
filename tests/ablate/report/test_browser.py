"""The report as a person sees it: `ablate dashboard` (a real optuna-dashboard server) in headless Chromium.

A small smoke sensitivity study is run and reported (the report is saved as the study's note, its figures as
artifacts); then Chromium, driven over the Chrome DevTools protocol (websocket-client), opens the note and
the HTML report at 1200 px and checks what a reader would: the note renders with its Summary, every figure in
it loads (``naturalWidth > 0``; a link that resolves to the dashboard's HTML gives 0), the dashboard names the
metric, and no table of the HTML report is wider than the window. The note's figures also load in plain
``optuna-dashboard``, run as the docs give it and as the run command printed it (``--artifact-dir``).
Screenshots go to the test's tmp folder.

Chromium comes from Debian (``make browser`` installs it when missing and run as root); without it the test
skips with the reason, except under ``CI=true``, where it fails.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ablate.execution.storages import open_storage

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
WIDTH = 1200
STUDY = "sensitivity-T2M1_T1M2-smoke"
DEADLINE = 90.0  # seconds to wait for a page before failing (a deadline, not a timing assertion)


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def _require(ok: bool, message: str) -> None:
    if ok:
        return
    if _in_ci():
        pytest.fail(f"{message}; CI=true requires the browser test to run")
    pytest.skip(message)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(what: str, check: Any, deadline: float = DEADLINE) -> Any:
    end = time.monotonic() + deadline
    while True:
        try:
            result = check()
        except OSError:
            result = None
        if result:
            return result
        if time.monotonic() > end:
            pytest.fail(f"gave up waiting for {what} after {deadline:.0f} s")
        time.sleep(0.25)


class Page:
    """One Chromium tab over the DevTools protocol: send a command, wait for its answer, evaluate JS."""

    def __init__(self, ws_url: str) -> None:
        import websocket

        self._ws = websocket.create_connection(ws_url, timeout=DEADLINE, suppress_origin=True)
        self._ids = itertools.count(1)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        n = next(self._ids)
        self._ws.send(json.dumps({"id": n, "method": method, "params": params}))
        while True:
            msg = json.loads(self._ws.recv())
            if msg.get("id") == n:
                if "error" in msg:
                    raise AssertionError(f"{method}: {msg['error']}")
                return msg["result"]

    def js(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"JS failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def open(self, url: str, ready: str) -> None:
        """Navigate and wait until the JS expression ``ready`` is true (the page has rendered what we check)."""
        self.call("Page.navigate", url=url)
        _wait(f"{url} to render", lambda: self.js(f"document.readyState === 'complete' && ({ready})"))

    def screenshot(self, path: Path) -> None:
        path.write_bytes(base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"]))

    def close(self) -> None:
        self._ws.close()


@pytest.fixture
def page(tmp_path: Path) -> Iterator[Page]:
    _require(CHROMIUM.exists(), f"Chromium not found at {CHROMIUM} (run `make browser` as root)")
    try:
        import websocket  # noqa: F401
    except ImportError:
        _require(False, "websocket-client is not installed (pip install -e '.[test]')")
    port = _free_port()
    args = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        f"--remote-debugging-port={port}",
        f"--window-size={WIDTH},900",
        "about:blank",
    ]
    log = (tmp_path / "chromium.log").open("wb")
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    try:
        targets = _wait(
            "Chromium's DevTools endpoint",
            lambda: [
                t
                for t in json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5))
                if t["type"] == "page"
            ],
        )
        p = Page(targets[0]["webSocketDebuggerUrl"])
        p.call("Page.enable")
        p.call("Emulation.setDeviceMetricsOverride", width=WIDTH, height=900, deviceScaleFactor=1, mobile=False)
        yield p
        p.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@dataclass
class Reported:
    url: str  # the study's storage URL
    study_id: int
    rep: Path  # the report folder
    printed: str  # what `ablate study` printed (its last lines name the dashboard commands)


@pytest.fixture
def reported(env: Path, run_cli: Any) -> Reported:
    """A smoke sensitivity study, reported: the note and its figures (artifacts) are in the study's storage."""
    url = f"sqlite:///{env / 'b.db'}"
    r = run_cli("study", "--case", "T2M1_T1M2", "--trials", 8, "--seeds", 2, "--fidelity", "smoke", "--storage", url)
    assert r.code == 0, r.err
    printed = r.out
    r = run_cli("report", STUDY, "--storage", url, "--out", env / "rep")
    assert r.code == 0, r.err
    study_id = open_storage(url, heartbeat_interval=None).get_study_id_from_name(STUDY)
    return Reported(url, study_id, env / "rep", printed)


@contextlib.contextmanager
def _serving(argv: list[str], port: int, log_path: Path) -> Iterator[str]:
    """Run a dashboard server (``argv``), wait until it listens on ``port``, yield its base URL, stop it."""
    log = log_path.open("wb")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=os.environ)
    try:
        _wait(
            f"{Path(argv[0]).name} to listen",
            lambda: socket.create_connection(("127.0.0.1", port), timeout=1).close() or True,
        )
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _exe(name: str) -> str:
    return shutil.which(name, path=str(Path(sys.executable).parent)) or name


@pytest.fixture
def dashboard(env: Path, reported: Reported) -> Iterator[tuple[str, int, Path]]:
    """The reported study served by `ablate dashboard` on a free port."""
    port = _free_port()
    argv = [_exe("ablate"), "dashboard", "--storage", reported.url, "--port", str(port)]
    with _serving(argv, port, env / "dashboard.log") as base:
        yield base, reported.study_id, reported.rep


IMAGES = "JSON.stringify([...document.images].map(i => [i.getAttribute('src'), i.complete, i.naturalWidth]))"
TABLES = """JSON.stringify([...document.querySelectorAll('table')].map(t => {
  const box = t.getBoundingClientRect(), holder = t.parentElement;
  return {caption: (t.caption ? t.caption.textContent : t.rows[0].textContent).slice(0, 60),
          right: Math.round(box.right), scroll: holder.scrollWidth - holder.clientWidth};
}))"""

NOTE_TABLES = """JSON.stringify((() => {
  const column = document.querySelector('h1').parentElement.getBoundingClientRect();
  return [...document.querySelectorAll('table')].map(t => ({
    head: t.rows[0].textContent.slice(0, 40), over: Math.round(t.getBoundingClientRect().right - column.right)}));
})())"""


HISTORY_Y_TITLE = "[...document.querySelectorAll('.js-plotly-plot .ytitle')].map(e => e.textContent).join(' | ')"
HISTORY_PLOTTED = "document.querySelectorAll('.js-plotly-plot .point').length > 0"


def test_note_figures_load_and_report_fits_1200px(page: Page, dashboard: tuple[str, int, Path], tmp_path: Path) -> None:
    base, study_id, rep = dashboard
    markdown = (rep / f"{STUDY}.md").read_text()
    n_figures = markdown.count("![")
    assert n_figures >= 2, "the smoke study should have importance and M × K figures"

    # the note: rendered, with its Summary on top and every figure loaded from the dashboard's artifacts
    page.open(
        f"{base}/dashboard/studies/{study_id}/note",
        "document.body.innerText.includes('Summary') && [...document.images].every(i => i.complete)"
        f" && document.images.length >= {n_figures}",
    )
    page.screenshot(tmp_path / "note.png")
    text = page.js("document.body.innerText")
    for expected in ("Summary", "Covered:", "Found:", "How sure:", "Next:"):
        assert expected in text, f"the note does not show {expected!r}"
    images = json.loads(page.js(IMAGES))
    assert len(images) == n_figures, images
    broken = [src for src, _complete, width in images if width == 0]
    assert not broken, f"figures that do not load in the dashboard note: {broken}"
    assert all(src.startswith("/artifacts/") for src, _c, _w in images), images
    note_tables = json.loads(page.js(NOTE_TABLES))
    assert note_tables, "the note shows no table"
    assert not [t for t in note_tables if t["over"] > 0], f"note tables wider than the note: {note_tables}"
    page.js("document.images[0].scrollIntoView()")
    page.screenshot(tmp_path / "note-figure.png")

    # the study's main page names the metric instead of "Objective 0"
    # (waiting for the history plot itself, whose y axis is where "Objective 0" used to be)
    page.open(f"{base}/dashboard/studies/{study_id}", HISTORY_PLOTTED)
    page.screenshot(tmp_path / "study.png")
    main_text = page.js("document.body.innerText")
    assert "val_accuracy" in main_text and "Objective 0" not in main_text
    assert "val_accuracy" in page.js(HISTORY_Y_TITLE)

    # the HTML report at 1200 px: no table wider than the window, no table scrolled sideways
    page.open((rep / f"{STUDY}.html").as_uri(), "document.images.length > 0")
    page.screenshot(tmp_path / "report-html.png")
    tables = json.loads(page.js(TABLES))
    assert tables, "the HTML report has no tables"
    too_wide = [t for t in tables if t["right"] > WIDTH or t["scroll"] > 0]
    assert not too_wide, f"tables wider than {WIDTH} px: {too_wide}"
    assert page.js("document.documentElement.scrollWidth") <= WIDTH
    assert all(w > 0 for _s, _c, w in json.loads(page.js(IMAGES)))
    assert page.js("document.querySelector('h2').textContent") == "Summary"


DOCUMENTED_PLAIN = re.compile(r"`(optuna-dashboard \S+ --artifact-dir \S+)`")


def test_note_figures_load_in_plain_optuna_dashboard(page: Page, env: Path, reported: Reported, tmp_path: Path) -> None:
    """The note's figures load when the study is served by plain `optuna-dashboard`, run as the docs give it
    (`optuna-dashboard URL --artifact-dir DIR`) with the URL and store the run command printed."""
    repo = Path(__file__).resolve().parents[3]
    documented = {doc: DOCUMENTED_PLAIN.findall((repo / doc).read_text()) for doc in ("README.md", "docs/cli.md")}
    assert all(documented.values()), f"a plain optuna-dashboard command with --artifact-dir is missing: {documented}"
    # the printed command: `dashboard: ablate dashboard --storage URL  (or: optuna-dashboard URL --artifact-dir DIR)`
    (line,) = [x for x in reported.printed.splitlines() if x.startswith("dashboard:")]
    plain = shlex.split(line.split("(or: ", 1)[1].removesuffix(")"))
    shapes = {tuple(a for a in shlex.split(c) if a.startswith("-")) for cs in documented.values() for c in cs}
    assert shapes == {tuple(a for a in plain if a.startswith("-"))}, (documented, plain)
    assert plain[:2] == ["optuna-dashboard", reported.url], plain

    n_figures = (reported.rep / f"{STUDY}.md").read_text().count("![")
    assert n_figures >= 2, "the smoke study should have importance and M × K figures"
    port = _free_port()
    argv = [_exe(plain[0]), *plain[1:], "--host", "127.0.0.1", "--port", str(port)]
    with _serving(argv, port, env / "plain-dashboard.log") as base:
        page.open(
            f"{base}/dashboard/studies/{reported.study_id}/note",
            "document.body.innerText.includes('Summary') && [...document.images].every(i => i.complete)"
            f" && document.images.length >= {n_figures}",
        )
        page.screenshot(tmp_path / "plain-note.png")
        images = json.loads(page.js(IMAGES))
    assert len(images) == n_figures, images
    broken = [src for src, _complete, width in images if width == 0]
    assert not broken, f"figures that do not load in plain optuna-dashboard: {broken}"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__]))
