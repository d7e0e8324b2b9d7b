"""Checks on the built website, in headless Chromium (run after `make book`).

Every page of the table of contents is opened from a server on localhost and must
make no request to any other host, log no console error, load every image, have
its display math typeset by MathJax (no raw ``$$`` or ``\\frac`` left in the
visible text), hide exercise solutions, show the edition in its footer, and have no
output, table, display formula or figure wider than the text column at 1280 px. A
full-page screenshot of each page is
saved under ``_build/screenshots/``. On a 412-px phone no page scrolls sideways, and figures
fill the column width at which the notebooks checked their text (a screenshot of the first
screen is saved too).

Where Chromium is missing the test is skipped with a loud message, unless
SOFTMAXBOOK_REQUIRE_BROWSER=1 (set by .ci/run), which turns the skip into a failure.
"""

import functools
import http.server
import os
import re
import shutil
import threading
import warnings
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
SHOTS = ROOT / "_build" / "screenshots"
INSTALL_HINT = "install it with: sudo apt-get install chromium   (Debian/Ubuntu)"

pytestmark = pytest.mark.site


def toc_pages():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    pages = [toc["root"]]
    for part in toc.get("parts", []):
        pages += [ch["file"] for ch in part["chapters"]]
    return pages


def require(condition, message):
    if condition:
        return
    if os.environ.get("SOFTMAXBOOK_REQUIRE_BROWSER") == "1":
        pytest.fail(message + " (SOFTMAXBOOK_REQUIRE_BROWSER=1 makes this a failure)")
    banner = "\n" + "!" * 78 + f"\n!! SKIPPED browser checks of the built site: {message}\n" + "!" * 78
    warnings.warn(banner)
    print(banner)
    pytest.skip(message)


@pytest.fixture(scope="module")
def server():
    require((HTML / "index.html").exists(), "no built site in _build/html; run `make book` first")
    handler = functools.partial(QuietHandler, directory=str(HTML))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def browser():
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    require(exe is not None, f"Chromium not found; {INSTALL_HINT}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=exe, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
        ])
        yield b
        b.close()


VISIBLE_TEXT_JS = """() => {
  const clone = document.body.cloneNode(true);   // the whole page, navigation included
  clone.querySelectorAll('pre, code, .highlight, script, style, mjx-container').forEach(e => e.remove());
  return clone.textContent;
}"""


# Outputs, tables, display formulas and figures that do not fit the text column: either their
# right edge passes the column's, or their content is wider than their box (cut off, or
# scrolled inside it). Code cells' sources are checked as text (79 characters, test_notebooks).
OVERFLOW_JS = """() => {
  const article = document.querySelector('article.bd-article') || document.querySelector('main');
  const right = article.getBoundingClientRect().right + 1;
  const sel = '.cell_output pre, .cell_output table, .cell_output img, .cell_output mjx-container,'
            + ' article table, mjx-container[display="true"], figure img';
  const out = [];
  for (const e of article.querySelectorAll(sel)) {
    const r = e.getBoundingClientRect();
    if (r.width === 0) continue;                     // inside a closed dropdown
    const inner = e.tagName === 'MJX-CONTAINER' ? e.firstElementChild : e;
    const contentWide = inner && inner.scrollWidth > e.clientWidth + 2 && e.clientWidth > 0;
    if (r.right > right || contentWide) {
      const text = (e.textContent || e.getAttribute('src') || '').trim().slice(0, 60);
      out.push(`${e.tagName.toLowerCase()} ${Math.round(r.right)}px>${Math.round(right)}px `
               + `content ${inner ? inner.scrollWidth : 0}/${e.clientWidth}: ${text}`);
    }
  }
  return out;
}"""


@pytest.mark.parametrize("page_path", toc_pages())
def test_page(page_path, server, browser):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    hosts, console_errors, bad_responses = [], [], []
    page.on("request", lambda r: hosts.append(r.url))
    page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: console_errors.append(str(e)))
    page.on("response", lambda r: bad_responses.append(f"{r.status} {r.url}") if r.status >= 400 else None)

    page.goto(f"{server}/{page_path}.html", wait_until="networkidle")
    if page.locator("script[src*='mathjax']").count():
        page.wait_for_function("window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=20000)
        page.evaluate("MathJax.startup.promise")

    foreign = [u for u in hosts if urlparse(u).scheme not in ("data", "blob", "about")
               and urlparse(u).hostname not in ("127.0.0.1", "localhost")]
    assert not foreign, f"requests to other hosts: {foreign}"
    assert not console_errors, f"console errors: {console_errors}"
    assert not bad_responses, f"failed responses: {bad_responses}"

    text = page.evaluate(VISIBLE_TEXT_JS)
    assert "$$" not in text and "\\frac" not in text and "\\sum" not in text, "raw TeX left in the page"
    # inline math MathJax did not typeset (e.g. in the navigation, which it does not process)
    raw_inline = [m for m in ("\\(", "\\)", "\\delta", "\\mathbf", "\\boldsymbol", "\\operatorname",
                              "\\sigma", "\\log", "\\mathrm") if m in text]
    assert not raw_inline, f"raw TeX {raw_inline} left in the visible text"
    n_math = page.locator("mjx-container").count()
    if page_path.startswith("notebooks/") or page_path.endswith("notation"):
        assert n_math > 10, f"only {n_math} typeset formulas"

    # provenance: the edition (version and date of the commit built) in every page's footer
    version = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M)[1]
    edition = page.locator(".book-edition")
    assert edition.count() == 1, "no edition in the footer"
    assert re.search(rf"edition {re.escape(version)} of \d{{4}}-\d{{2}}-\d{{2}}",
                     edition.inner_text()), edition.inner_text()

    broken = page.evaluate("""() => Array.from(document.images)
        .filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)""")
    assert not broken, f"images that did not load: {broken}"

    if page_path.startswith("notebooks/"):
        assert page.locator(".exercise").count() >= 3
        solutions = page.locator(".solution")
        assert solutions.count() >= 3
        for k in range(solutions.count()):   # solutions start collapsed (toggle, dropdown)
            sol = solutions.nth(k)
            assert "dropdown" in (sol.get_attribute("class") or "")

    wide = page.evaluate(OVERFLOW_JS)
    assert not wide, f"wider than the text column at 1280 px: {wide[:5]}"

    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / (page_path.replace("/", "__") + ".png")), full_page=True)
    page.close()


PHONE_JS = """() => {
  const article = document.querySelector('article.bd-article') || document.querySelector('main');
  const figures = [...article.querySelectorAll('.cell_output img')]
      .map(i => i.getBoundingClientRect().width).filter(w => w > 0);
  return {column: article.clientWidth
                  - parseFloat(getComputedStyle(article).paddingLeft)
                  - parseFloat(getComputedStyle(article).paddingRight),
          figures: figures, page: document.documentElement.scrollWidth};
}"""


@pytest.mark.parametrize("page_path", toc_pages())
def test_phone_page(page_path, server, browser):
    """On a 412-px phone the page does not scroll sideways, and figures are shown at least as
    wide as softmaxbook.plotting.PHONE_COLUMN_PX, the width at which every notebook checked
    its figures' text (so the check's assumption holds). A screenshot is saved."""
    from softmaxbook.plotting import PHONE_COLUMN_PX

    page = browser.new_page(viewport={"width": 412, "height": 915}, device_scale_factor=2.625,
                            is_mobile=True, has_touch=True)
    page.goto(f"{server}/{page_path}.html", wait_until="networkidle")
    found = page.evaluate(PHONE_JS)
    assert found["page"] <= 412, f"the page scrolls sideways on a phone: {found['page']} px"
    if page_path.startswith("notebooks/"):
        assert found["figures"], "no figure found"
    assert found["column"] >= PHONE_COLUMN_PX - 1, found
    narrow = [w for w in found["figures"] if w < PHONE_COLUMN_PX - 1]
    natural = page.evaluate("""() => [...document.querySelectorAll('.cell_output img')]
        .filter(i => i.getBoundingClientRect().width < i.naturalWidth / 1.01
                     && i.getBoundingClientRect().width < %d).length""" % (PHONE_COLUMN_PX - 1))
    assert not natural, f"{natural} figures shown narrower than the phone column: {narrow}"
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / ("phone__" + page_path.replace("/", "__") + ".png")))
    page.close()
