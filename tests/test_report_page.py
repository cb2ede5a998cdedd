"""index.html, the report as one page a person reads: the answer first, every figure beside its table, and, in a
real browser (headless Chromium, through the DevTools protocol), every image loads and no link is dead."""

import json
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from ablate.report.html import inline, table_html
from ablate.report.page import write_report
from ablate.results.reader import load_results

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def ablation_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    write_report(load_results(FIXTURES / "selected_ablation"), out)
    return out


def test_the_page_opens_with_the_answer_and_pairs_each_figure_with_its_table(ablation_report):
    text = (ablation_report / "index.html").read_text()
    answer = text[text.index("<div class='answer'>") : text.index("<nav>")]
    # the summary's statements and its table, then the ladder's figure beside the ladder's table
    assert answer.index("<h2 id='summary'>") < answer.index("<table>") < answer.index("src='ablation/ladder.png'")
    assert "ablation/ladder.csv" in answer
    assert text.count("src='ablation/ladder.png'") == 1  # lifted into the answer, not repeated below
    # every figure of the report is on the page, and each one that has a same-named table sits beside it
    figures = sorted(p.relative_to(ablation_report).as_posix() for p in ablation_report.glob("*/*.png"))
    assert figures and all(f"src='{f}'" in text for f in figures)
    for figure in figures:
        csv = figure.replace(".png", ".csv")
        if (ablation_report / csv).exists():
            pair = text[text.rindex("<div class='pair'>", 0, text.index(f"src='{figure}'")) :]
            pair = pair[: pair.index("</div></div>")]
            assert f"href='{csv}'" in pair, figure
    assert text.index("<nav>") < text.index("<h2 id='dynamics'>")


def test_cells_and_notes_are_escaped_and_code_spans_kept():
    import polars as pl

    assert inline("ranked on `best_val_acc` <b>") == "ranked on <code>best_val_acc</code> &lt;b&gt;"
    shown = table_html(pl.DataFrame({"a|b": ["x<y"], "acc_pct": [41.26]}))
    assert "<th>a|b</th>" in shown and "<td>x&lt;y</td>" in shown and "<td>41.3</td>" in shown


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    pytest.skip("headless Chromium is not installed (Debian: apt-get install chromium)")


def _in_browser(page: Path, profile: Path) -> dict:
    """Open ``page`` in headless Chromium and read, after its load event, each image's state and each link."""
    connect = pytest.importorskip("websockets.sync.client").connect
    browser = subprocess.Popen(
        [_chromium(), "--headless=new", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}",
         "--remote-debugging-port=0", "about:blank"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.time() + 60
        while not (port_file.exists() and port_file.read_text().strip()) and time.time() < deadline:
            time.sleep(0.2)
        port = int(port_file.read_text().splitlines()[0])
        targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=30))
        socket_url = next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")
        with connect(socket_url, max_size=None, open_timeout=30) as conn:
            calls = iter(range(1, 1000))

            def call(method, **params):
                ident = next(calls)
                conn.send(json.dumps({"id": ident, "method": method, "params": params}))
                while True:
                    message = json.loads(conn.recv(timeout=60))
                    if message.get("method") == "Page.loadEventFired":
                        loaded.append(True)
                    if message.get("id") == ident:
                        return message["result"]

            loaded: list[bool] = []
            call("Page.enable")
            call("Page.navigate", url=page.as_uri())
            while not loaded:
                if json.loads(conn.recv(timeout=60)).get("method") == "Page.loadEventFired":
                    loaded.append(True)
            script = """JSON.stringify({
                images: Array.from(document.images).map(i => [i.getAttribute('src'), i.complete && i.naturalWidth > 0]),
                links: Array.from(document.links).map(a => [a.href.split('#')[0],
                    !a.hash || document.getElementById(a.hash.slice(1)) !== null]),
                title: document.title})"""
            result = call("Runtime.evaluate", expression=script, returnByValue=True)
            return json.loads(result["result"]["value"])
    finally:
        browser.kill()
        browser.wait()


def test_in_a_real_browser_every_image_loads_and_no_link_is_dead(ablation_report, tmp_path):
    seen = _in_browser(ablation_report / "index.html", tmp_path / "profile")
    assert seen["title"] == "Report: selected_ablation"
    assert len(seen["images"]) == len(list(ablation_report.glob("*/*.png")))
    assert [src for src, ok in seen["images"] if not ok] == []
    assert seen["links"], "the page links its tables' files"
    dead = [
        href
        for href, anchor_found in seen["links"]
        if not (anchor_found and Path(urllib.request.url2pathname(href.removeprefix("file://"))).is_file())
    ]
    assert dead == []
