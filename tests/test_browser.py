"""Open the built book in headless Chromium and check what a reader would see.

Run with ``make browser-test`` (installs Debian's chromium + chromedriver, then ``pytest -m browser``)
after ``make book``. The built site in ``_build/html`` is served on a free localhost port; Chromium is
driven through Selenium and Debian's chromedriver, never a downloaded browser, in a 1280 × 900 window
(a laptop). Besides loading, links and images, the checks read each page as a newcomer would: nothing
makes the page scroll sideways, no image is shrunk below 45 % of the size it was drawn at, one caption
per figure, no warning or Python repr in an output, the landing page states the computed verdict, and
no page runs past :data:`WORD_LIMIT` words (:data:`KNOWN_LONG` lists the pages still over it). A
screenshot of every page, and a full-length one, go to ``artifacts/screenshots/`` (git-ignored).
"""

from __future__ import annotations

import functools
import http.server
import re
import threading
import urllib.error
import urllib.request
from collections import defaultdict
from pathlib import Path
from urllib.parse import urldefrag, urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")

PAGE_LOAD_TIMEOUT_S = 60
WAIT_S = 30
HTTP_TIMEOUT_S = 15

# Flags for a closed network: without the background-networking ones Chromium keeps trying to reach
# Google services and floods the logs with failures.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--no-proxy-server",
    "--window-size=1280,900",
)

#: A page longer than this many words (the article's text, code included) is too long to read in one go.
WORD_LIMIT = 3000
#: Pages over :data:`WORD_LIMIT` today, each with the most words it may reach until it is split: they
#: cannot grow further, and an entry is removed once its page is under the limit (the test says so).
#: Splitting them is issue 35's second part (07 into its questions, reference tables to an appendix).
KNOWN_LONG = {
    "notebooks/07_why_sikd_works": 9500,  # ablations: eight questions on one page; to be split by question
    "notebooks/06_five_tasks": 5000,      # the evidence notebook; its full degradation table (86 rows) belongs in an appendix
    "book/results": 4500,                 # pastes 06's and 07's outputs; reference tables to go to an appendix
    "book/api": 30000,                    # generated from the docstrings: looked up, never read through
    "book/results/RUNLOG": 4000,          # the log of every evidence run, newest first: looked up by date
    "book/data": 3500,                    # the difficulty table (every hardening of five tasks) and the real
                                          # datasets' layouts are reference tables, to go to an appendix
}
#: At most this fraction of an image's drawn width may be lost to shrinking it into the column.
MIN_SHOWN_FRACTION = 0.45

pytestmark = [
    pytest.mark.browser,
    # covers fixtures too (starting the browser), so nothing here can hang the suite
    pytest.mark.timeout(900, func_only=False),
]


# ----------------------------------------------------------------------------- book structure


def _toc_docnames() -> list[str]:
    """Every document of _toc.yml, in reading order (root first)."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    names = [toc["root"]]

    def walk(entries):
        for entry in entries or ():
            if "file" in entry:
                names.append(entry["file"])
            walk(entry.get("sections"))
            walk(entry.get("chapters"))

    for part in toc.get("parts", ()):
        walk(part.get("chapters"))
    walk(toc.get("chapters"))
    return [re.sub(r"\.(md|ipynb)$", "", n) for n in names]


def _notebook_docnames() -> list[str]:
    return [n for n in _toc_docnames() if (ROOT / f"{n}.ipynb").exists()]


def _repository() -> tuple[str, str, str]:
    """(org, repo, branch) from the one place the repository URL is written: _config.yml."""
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    url = config["repository"]["url"].rstrip("/")
    org, repo = url.split("/")[-2:]
    return org, repo, config["repository"].get("branch", "main")


def _colab_url() -> str:
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    return config["launch_buttons"]["colab_url"].rstrip("/")


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def site() -> str:
    """Serve _build/html on a free localhost port; yields the base URL (ending in '/')."""
    if not (HTML / "index.html").exists():
        pytest.skip(f"no built book at {HTML.relative_to(ROOT)}/: run `make book` first")

    class QuietHandler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):  # keep pytest output readable
            pass

    handler = functools.partial(QuietHandler, directory=str(HTML))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="book-http", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser(site, tmp_path_factory):
    """Headless Debian Chromium driven by Debian's chromedriver (no browser download, ever).

    A missing browser or Selenium is an error, not a skip: `make browser-test` installs the browser
    and requirements.txt lists selenium, so a silent skip would hide a broken setup.
    """
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        pytest.fail(f"{', '.join(missing)} missing: run `bash .ci/install-chromium` (as root)")
    try:
        from selenium import webdriver
    except ImportError:
        pytest.fail("selenium is not installed: `pip install selenium` (listed in requirements.txt)")

    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # An explicit driver path keeps Selenium Manager (which would go online) out of the way.
    service = Service(executable_path=str(CHROMEDRIVER), log_output=str(tmp_path_factory.mktemp("log") / "cd.log"))
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(PAGE_LOAD_TIMEOUT_S)
    driver.set_script_timeout(WAIT_S)
    try:
        yield driver
    finally:
        driver.quit()


def _http_get(url: str) -> tuple[int, bytes]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=HTTP_TIMEOUT_S) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, b""


def _open(driver, url: str) -> None:
    """Load a page and wait until it and all its images have finished loading."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    WebDriverWait(driver, WAIT_S).until(lambda d: d.execute_script("return document.readyState") == "complete")
    # images below the fold may be lazy: make every one eager, then wait for all to settle
    driver.execute_script(
        "document.querySelectorAll('img').forEach(i => { i.loading = 'eager'; i.scrollIntoView(); });"
        "window.scrollTo(0, 0);"
    )
    WebDriverWait(driver, WAIT_S).until(
        lambda d: d.execute_script("return Array.from(document.images).every(i => i.complete)")
    )


def _local_console_errors(driver, site: str) -> list[str]:
    """Severe console messages caused by the book's own files (external CDNs are unreachable here).

    /favicon.ico is requested by the browser itself, not by the book (which sets no favicon).
    """
    return [
        entry["message"]
        for entry in driver.get_log("browser")
        if entry["level"] == "SEVERE" and site in entry["message"] and f"{site}favicon.ico" not in entry["message"]
    ]


@pytest.fixture(scope="module")
def pages(browser, site):
    """Visit every page of the toc once; record what the checks below need."""
    visited = {}
    for docname in _toc_docnames():
        url = f"{site}{docname}.html"
        status, _ = _http_get(url)
        _open(browser, url)
        visited[docname] = browser.execute_script(
            f"const MIN_FRACTION = {MIN_SHOWN_FRACTION};\n" + """
            return {
              url: location.href,
              title: document.title,
              h1: Array.from(document.querySelectorAll('article h1, main h1')).map(h => h.textContent.trim()),
              links: Array.from(document.querySelectorAll('a[href]')).map(a => a.href),
              assets: Array.from(document.querySelectorAll('script[src], link[rel=stylesheet][href]'))
                        .map(e => e.src || e.href),
              images: Array.from(document.images).map(i => ({src: i.currentSrc || i.src,
                        complete: i.complete, width: i.naturalWidth, alt: i.alt})),
              outputImages: document.querySelectorAll('div.cell_output img').length,
              // tables whose row headers are just 0, 1, 2, ...: a raw pandas index shown to the reader
              rawIndexTables: Array.from(document.querySelectorAll('article table')).filter(table => {
                const heads = Array.from(table.querySelectorAll('tbody tr')).map(r => r.querySelector('th'));
                return heads.length > 0 && heads.every((th, i) => th && th.textContent.trim() === String(i));
              }).length,
              // text inside a closed <details> (solutions) that is nevertheless rendered visibly
              visibleSolutions: Array.from(document.querySelectorAll('details:not([open])')).filter(d =>
                // checkVisibility: a closed <details> keeps layout boxes for its content (Chrome's
                // content-visibility), so getClientRects() would call hidden content visible
                Array.from(d.children).some(c => c.tagName !== 'SUMMARY' && c.checkVisibility())
              ).length,
              // a Python object's repr pasted instead of its content (e.g. a glued Markdown object)
              reprLeaks: (document.querySelector('article') || document.body).innerText
                           .split(String.fromCharCode(10))
                           .filter(l => /<IPython[.]core[.]display[.]|object at 0x[0-9a-f]+>|<Figure size \d|<matplotlib[.]|<Axes: |<pandas[.]io[.]formats[.]style[.]Styler/.test(l)),
              // a <figure> without a caption
              uncaptioned: Array.from(document.querySelectorAll('article figure')).filter(f => {
                const cap = f.querySelector('figcaption');
                return !cap || !cap.textContent.trim();
              }).length,
              // figures with more than one caption, and captions repeated on several figures (myst-nb
              // wraps every display output of a captioned cell, a progress bar or a table included)
              multiCaptioned: Array.from(document.querySelectorAll('article figure'))
                                .filter(f => f.querySelectorAll('figcaption').length > 1).length,
              captions: Array.from(document.querySelectorAll('article figure figcaption'))
                          .map(c => c.textContent.trim().replace(/\s+/g, ' ')),
              // the page scrolls sideways, or something in the article reaches past its right edge
              // without a scrolling box of its own inside the article
              pageWidth: document.documentElement.scrollWidth,
              viewWidth: document.documentElement.clientWidth,
              overflowing: (() => {
                const article = document.querySelector('article');
                if (!article) return [];
                const right = article.getBoundingClientRect().right;
                const scrolls = el => {
                  for (let a = el.parentElement; a && a !== article; a = a.parentElement) {
                    const o = getComputedStyle(a).overflowX;
                    if (o === 'auto' || o === 'scroll' || o === 'hidden') return true;
                  }
                  return false;
                };
                return Array.from(article.querySelectorAll('table, img, svg, figure, .cell_output > *'))
                  .filter(e => e.getBoundingClientRect().width > 0 && e.getBoundingClientRect().right > right + 2
                               && !scrolls(e))
                  .map(e => `${e.tagName.toLowerCase()} ${Math.round(e.getBoundingClientRect().width)} px`);
              })(),
              // an image shown at a small fraction of the width it was drawn at (text shrinks with it)
              shrunk: Array.from(document.querySelectorAll('article img')).filter(i =>
                  i.naturalWidth > 0 && i.getBoundingClientRect().width > 0 && location.origin === new URL(i.src).origin
                  && i.getBoundingClientRect().width < MIN_FRACTION * i.naturalWidth)
                .map(i => `${i.src.split('/').pop()}: drawn ${i.naturalWidth} px, shown ${Math.round(i.getBoundingClientRect().width)} px`),
              // warning text or a traceback in what a cell printed or displayed
              warnings: Array.from(document.querySelectorAll('article .cell_output, article .output'))
                .map(o => o.innerText)
                .flatMap(t => t.split(String.fromCharCode(10)))
                .filter(l => /\b[A-Z]\w*Warning\b|Traceback \(most recent call last\)|^\s*warnings\.warn/.test(l)),
              // table headers in code's snake_case (intra_ci, raw_teacher_gated) rather than words
              snakeHeaders: Array.from(document.querySelectorAll('article table thead th'))
                .map(th => th.textContent.trim()).filter(t => /^[a-z0-9]+(_[a-z0-9]+)+$/.test(t)),
              words: ((document.querySelector('article') || document.body).innerText.match(/\S+/g) || []).length,
              text: (document.querySelector('article') || document.body).innerText.replace(/\s+/g, ' '),
            };
            """
        )
        visited[docname].update(status=status, console_errors=_local_console_errors(browser, site))
    return visited


# ----------------------------------------------------------------------------- checks


def test_every_toc_page_loads(pages):
    for docname, page in pages.items():
        assert page["status"] == 200, f"{docname}: HTTP {page['status']} for {page['url']}"
        assert page["h1"], f"{docname}: no page heading rendered ({page['url']})"
        assert "404" not in page["title"], f"{docname}: {page['title']!r}"
        assert not page["console_errors"], f"{docname}: console errors {page['console_errors']}"


def test_reader_sees_no_raw_index_no_open_solution_and_captioned_figures(pages):
    problems = []
    for docname, page in pages.items():
        if page["rawIndexTables"]:
            problems.append(f"{docname}: {page['rawIndexTables']} table(s) show a raw 0, 1, 2 ... index")
        if page["visibleSolutions"]:
            problems.append(f"{docname}: {page['visibleSolutions']} closed <details> block(s) show their content")
        if page["reprLeaks"]:
            problems.append(f"{docname}: a Python repr instead of content: {page['reprLeaks'][:2]}")
        if page["uncaptioned"]:
            problems.append(f"{docname}: {page['uncaptioned']} figure(s) without a caption")
    assert not problems, "\n".join(problems)


def test_root_redirects_to_intro(browser, site):
    _open(browser, site)
    assert browser.current_url.startswith(f"{site}{_toc_docnames()[0]}.html"), browser.current_url


def test_no_broken_internal_links_or_assets(pages, site):
    targets = defaultdict(set)  # url without fragment -> {(fragment, source page)}
    for docname, page in pages.items():
        for href in page["links"] + page["assets"]:
            if not href.startswith(site):
                continue  # external (GitHub buttons, Colab, CDNs): not checked offline
            url, fragment = urldefrag(href)
            targets[url].add((fragment, docname))

    broken = []
    for url, refs in sorted(targets.items()):
        status, body = _http_get(url)
        sources = sorted({src for _, src in refs})
        if status != 200:
            broken.append(f"HTTP {status}: {url} (linked from {', '.join(sources)})")
            continue
        if not urlsplit(url).path.endswith(".html"):
            continue
        text = body.decode("utf-8", errors="replace")
        for fragment, src in sorted(refs):
            if fragment and not re.search(rf"""\b(id|name)=["']{re.escape(fragment)}["']""", text):
                broken.append(f"missing anchor #{fragment} in {url} (linked from {src})")
    assert not broken, "broken internal links:\n" + "\n".join(broken)


def test_no_missing_images(pages, site):
    missing = []
    for docname, page in pages.items():
        for image in page["images"]:
            if not image["src"].startswith(site):
                continue  # external (e.g. the Colab badge in each notebook): unreachable offline
            if not image["complete"] or image["width"] <= 0:
                missing.append(f"{docname}: {image['src']} (alt {image['alt']!r}) did not render")
            elif image["src"].startswith(site) and _http_get(image["src"])[0] != 200:
                missing.append(f"{docname}: {image['src']} not served")
    assert not missing, "\n".join(missing)


@pytest.mark.parametrize("docname", _notebook_docnames())
def test_notebook_page_shows_executed_figures(pages, docname):
    assert pages[docname]["outputImages"] >= 1, (
        f"{docname}: no rendered output image in any output cell: was the notebook executed?"
    )


@pytest.mark.parametrize("docname", _notebook_docnames())
def test_notebook_colab_link(pages, docname):
    # the page's launch button opens the branch the book was built from; the notebook's own badge
    # opens the release tag that its install cell installs (sikd_utils/_project.py)
    from sikd_utils import _project

    org, repo, branch = _repository()
    expected = sorted({f"{_colab_url()}/github/{org}/{repo}/blob/{ref}/{docname}.ipynb" for ref in (branch, _project.TAG)})
    colab = sorted({href for href in pages[docname]["links"] if href.startswith(_colab_url())})
    assert colab == expected, f"{docname}: Colab links {colab}, expected {expected}"


def test_results_page_shows_glued_outputs(browser, site):
    """book/results.md pastes the table, figure and provenance glued by notebooks/06_five_tasks."""
    results = next(d for d in _toc_docnames() if d.endswith("/results"))
    _open(browser, f"{site}{results}.html")
    found = browser.execute_script(
        """
        return {
          tables: document.querySelectorAll('article table.dataframe').length,
          figures: Array.from(document.querySelectorAll('article img')).filter(i => i.naturalWidth > 0).length,
          provenance: Array.from(document.querySelectorAll('article .pasted-text')).map(e => e.textContent.trim()),
        };
        """
    )
    assert found["tables"] >= 1, "results page: glued five_task_table missing"
    assert found["figures"] >= 1, "results page: glued five_task_dumbbell missing"
    assert any(found["provenance"]), "results page: glued five_task_provenance missing"


def test_search_finds_distillation(browser, site):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    _open(browser, f"{site}search.html?q=distillation")
    WebDriverWait(browser, WAIT_S).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, "#search-results ul.search li")
        or "did not match any" in d.find_element(By.ID, "search-results").text
    )
    hits = browser.find_elements(By.CSS_SELECTOR, "#search-results ul.search li a")
    assert len(hits) >= 1, f"search for 'distillation' found nothing: {browser.find_element(By.ID, 'search-results').text!r}"
    assert all(a.get_attribute("href").startswith(site) for a in hits)


def test_no_page_scrolls_sideways(pages):
    problems = []
    for docname, page in pages.items():
        if page["pageWidth"] > page["viewWidth"] + 1:
            problems.append(f"{docname}: the page is {page['pageWidth']} px wide in a {page['viewWidth']}-px window")
        if page["overflowing"]:
            problems.append(f"{docname}: reaches past the text column: {page['overflowing'][:4]}")
    assert not problems, "\n".join(problems)


def test_images_are_shown_near_the_size_they_were_drawn(pages):
    shrunk = [f"{docname}: {line}" for docname, page in pages.items() for line in page["shrunk"]]
    assert not shrunk, f"images shown below {MIN_SHOWN_FRACTION:.0%} of their drawn width:\n" + "\n".join(shrunk)


def test_one_caption_per_figure(pages):
    problems = []
    for docname, page in pages.items():
        if page["multiCaptioned"]:
            problems.append(f"{docname}: {page['multiCaptioned']} figure(s) with several captions")
        repeated = {c for c in page["captions"] if page["captions"].count(c) > 1}
        problems += [f"{docname}: {page['captions'].count(c)} figures captioned {c[:70]!r}…" for c in sorted(repeated)]
    assert not problems, "\n".join(problems)


def test_no_warning_in_any_output(pages):
    found = [f"{docname}: {line.strip()[:160]}" for docname, page in pages.items() for line in page["warnings"]]
    assert not found, "warnings or tracebacks in cell outputs:\n" + "\n".join(found)


def test_the_landing_page_states_the_computed_verdict(pages):
    """The sentence the package computes from the committed results, on the first page a reader opens."""
    from sikd_utils import evidence

    sentence = " ".join(evidence.outcome().headline.split())
    assert sentence != evidence.PENDING, "no committed results: the landing page has no verdict to show"
    assert sentence in pages[_toc_docnames()[0]]["text"], f"the landing page does not say: {sentence!r}"


def test_table_headers_are_words(pages):
    found = {d: sorted(set(p["snakeHeaders"])) for d, p in pages.items() if p["snakeHeaders"]}
    assert not found, f"table headers in snake_case (name them in sikd_utils.viz.COLUMN_LABELS): {found}"


def test_pages_are_short_enough_to_read(pages):
    too_long = {d: p["words"] for d, p in pages.items() if p["words"] > KNOWN_LONG.get(d, WORD_LIMIT)}
    assert not too_long, f"pages over their word limit ({WORD_LIMIT}, or KNOWN_LONG's): {too_long}"
    fixed = [d for d in KNOWN_LONG if d in pages and pages[d]["words"] <= WORD_LIMIT]
    assert not fixed, f"now under {WORD_LIMIT} words: remove {fixed} from KNOWN_LONG"


def test_screenshots(browser, site):
    """Viewport and full-page screenshots of every page for a human to look at (artifacts/ is git-ignored)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    wanted = {"intro": _toc_docnames()[0]}
    wanted.update({d.replace("/", "_"): d for d in _toc_docnames()[1:]})
    width, height = browser.get_window_size()["width"], browser.get_window_size()["height"]
    try:
        for name, docname in wanted.items():
            _open(browser, f"{site}{docname}.html")
            assert browser.save_screenshot(str(SCREENSHOTS / f"{name}.png"))
            # full page: a window as tall as the page keeps the layout (sidebars) intact
            full = browser.execute_script("return document.documentElement.scrollHeight")
            browser.set_window_size(width, min(full, 12000))
            assert browser.save_screenshot(str(SCREENSHOTS / f"{name}_full.png"))
            browser.set_window_size(width, height)
    finally:
        browser.set_window_size(width, height)
    assert (SCREENSHOTS / "intro.png").stat().st_size > 0
