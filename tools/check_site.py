"""Open every page of the built site in headless Chromium and fail on what a reader would see.

    python tools/check_site.py [_build/html] [--screenshots _build/screenshots]

Sphinx cannot see what happens in the browser: MathJax typesets the math there, images
load there, scripts run there. This command serves the built site on the loopback
interface, opens each HTML page in Debian's Chromium (driven by Playwright, which
downloads nothing here), saves a full-page screenshot of each for review, and reports:

- a MathJax error (``Math input error``) on any page;
- an image that did not load;
- an image without real alt text (none, or a file name);
- an image in the text that is not a figure with a caption (``<figure>`` with ``<figcaption>``);
- a console error or an uncaught script error from the book's own pages;
- a request that leaves the site's folder (the book must read offline);
- an internal link, or its ``#anchor``, that does not resolve;
- a figure, image or table wider than the page's text column;
- a line of a cell's printed output wider than its box (it would scroll sideways);
- a table header that breaks a word across lines ("Throughp / ut"; a break at a hyphen or
  a slash is fine).

It exits 1 when it finds a problem, and 2 when Chromium or Playwright is missing, saying
how to install them. ``make check-site`` runs it after ``make book``; so does CI.
"""

from __future__ import annotations

import argparse
import functools
import html.parser
import http.server
import re
import shutil
import sys
import threading
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

INSTALL_HINT = ("headless Chromium is needed to check the site: install Debian's package with "
                "`sudo apt-get install chromium` (and `make env` for Playwright's Python package)")
SKIP_DIRS = {"_static", "_sources", "_images", "reports", "_sphinx_design_static", ".doctrees"}
#: Page elements the text column must hold: figures, images and tables.
WIDE_SELECTOR = "article.bd-article img, article.bd-article table, article.bd-article figure"


@dataclass(frozen=True)
class Problem:
    """One thing a reader would see broken: the page, the kind of problem, the detail."""

    page: str
    kind: str
    detail: str

    def __str__(self) -> str:
        return f"{self.page}: {self.kind}: {self.detail}"


def find_chromium() -> str | None:
    """The path of a Chromium executable on this machine, or ``None``."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def site_pages(root: Path) -> list[Path]:
    """Every HTML page of the built site (not the search page, assets or reports)."""
    pages = []
    for path in sorted(root.rglob("*.html")):
        rel = path.relative_to(root)
        if rel.parts[0] in SKIP_DIRS or rel.name in ("search.html", "genindex.html"):
            continue
        pages.append(path)
    return pages


class _Ids(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("id", "name") and value:
                self.ids.add(value)


@functools.lru_cache(maxsize=None)
def _anchors(path: Path) -> frozenset[str]:
    parser = _Ids()
    parser.feed(path.read_text(encoding="utf-8", errors="replace"))
    return frozenset(parser.ids)


def resolve_link(root: Path, page: Path, href: str) -> str | None:
    """Why ``href`` (as written in ``page``) does not resolve inside the site, or ``None``
    when it does or when it points outside the site (those are checked as requests)."""
    parsed = urllib.parse.urlsplit(href)
    if parsed.scheme or parsed.netloc or href.startswith(("mailto:", "javascript:")):
        return None
    target = page if not parsed.path else (page.parent / urllib.parse.unquote(parsed.path)).resolve()
    if not target.is_relative_to(root.resolve()):
        return f"{href} leaves the site's folder"
    if target.is_dir():
        target = target / "index.html"
    if not target.exists():
        return f"{href} points to a missing file"
    fragment = urllib.parse.unquote(parsed.fragment)
    if fragment and target.suffix == ".html" and fragment not in _anchors(target):
        return f"{href}: no element with id {fragment!r} in {target.name}"
    return None


def _keep_inside(base: str, now: dict):
    """A route handler that lets requests inside the site through and records (and blocks)
    any other, for the page being checked now (``now["rel"]``, ``now["found"]``)."""
    def handle(route):
        url = route.request.url
        if url.startswith(base) or url.startswith(("data:", "blob:", "about:")):
            route.continue_()
        else:
            now["found"].append(Problem(now["rel"], "request outside the site", url))
            route.abort()
    return handle


def _redirect_target(path: Path) -> str | None:
    """The URL of a page that is only a ``<meta http-equiv="Refresh">`` redirect, else ``None``."""
    head = path.read_text(encoding="utf-8", errors="replace")[:2000]
    match = re.search(r'http-equiv="Refresh"\s+content="\d+;\s*url=([^"]+)"', head, flags=re.I)
    return match.group(1) if match else None


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # the checker reports what matters itself
        pass


def serve(root: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    """Serve ``root`` on a free loopback port; returns the server and its base URL."""
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_port}/"


# Runs in the page once it has loaded: waits for MathJax, then reports what the reader sees.
_INSPECT = """
async (wideSelector) => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    await MathJax.startup.promise;
  }
  const images = Array.from(document.images);
  for (const img of images) { img.loading = "eager"; }
  await Promise.all(images.map(img => img.decode().catch(() => null)));
  const article = document.querySelector("article.bd-article") || document.body;
  // the text column is the article's content box: its padding is margin the text never uses
  const style = getComputedStyle(article);
  const column = {width: article.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight)};
  const wide = [];
  for (const el of document.querySelectorAll(wideSelector)) {
    const box = el.getBoundingClientRect();
    const width = Math.max(box.width, el.scrollWidth || 0);
    if (box.width > 0 && width > column.width + 2) {
      wide.push(`${el.tagName.toLowerCase()} ${Math.round(width)} px in a ${Math.round(column.width)} px column` +
                (el.id ? ` (#${el.id})` : "") + `: ${(el.getAttribute("alt") || el.textContent || "").trim().slice(0, 60)}`);
    }
  }
  // a header word split over two lines: its characters sit on more than one line box
  const brokenWords = [];
  for (const th of article.querySelectorAll("table th")) {
    const walker = document.createTreeWalker(th, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      for (const m of node.data.matchAll(/[^\\s\\-\\u2010\\u2013\\u2014\\/]+/g)) {
        const range = document.createRange();
        range.setStart(node, m.index);
        range.setEnd(node, m.index + m[0].length);
        const lines = new Set(Array.from(range.getClientRects()).filter(r => r.width > 0).map(r => Math.round(r.top)));
        if (lines.size > 1) brokenWords.push(`${m[0]} (in "${th.textContent.trim().slice(0, 40)}")`);
      }
    }
  }
  // printed output (not code, which may scroll) whose longest line overflows its box
  const wideOutput = Array.from(article.querySelectorAll(".cell_output pre")).filter(
    e => e.scrollWidth > e.clientWidth + 2).map(
    e => `${e.scrollWidth} px in a ${e.clientWidth} px box: ${e.textContent.trim().slice(0, 60)}`);
  return {
    wideOutput: wideOutput,
    brokenWords: brokenWords,
    mathErrors: Array.from(document.querySelectorAll("mjx-merror")).map(
      e => e.getAttribute("data-mjx-error") || e.textContent),
    brokenImages: images.filter(i => !i.complete || i.naturalWidth === 0).map(i => i.getAttribute("src")),
    images: images.map(i => [i.getAttribute("src"), i.getAttribute("alt")]),
    uncaptioned: Array.from(article.querySelectorAll("img")).filter(i => {
      const figure = i.closest("figure");
      return !(figure && figure.querySelector("figcaption") && figure.querySelector("figcaption").textContent.trim());
    }).map(i => i.getAttribute("src")),
    links: Array.from(document.querySelectorAll("a[href]")).map(a => a.getAttribute("href")),
    wide: wide,
  };
}
"""


def poor_alt_text(src: str, alt: str | None) -> bool:
    """Whether an image's alt text tells a reader nothing: none, or a file name or path."""
    alt = (alt or "").strip()
    if not alt:
        return True
    name = Path(urllib.parse.urlsplit(src or "").path).name
    path_like = "/" in alt and " " not in alt  # "d/h" in a sentence is words, "../_images/x" is a path
    return alt == name or path_like or alt.lower().endswith((".png", ".svg", ".jpg", ".jpeg", ".gif"))


def check_site(root: str | Path, screenshots: str | Path | None = None, pages: list[Path] | None = None,
               width: int = 1280, height: int = 900) -> list[Problem]:
    """Open every page under ``root`` (or just ``pages``) in headless Chromium; return the
    problems found and save a full-page screenshot of each page under ``screenshots``."""
    from playwright.sync_api import sync_playwright

    root = Path(root).resolve()
    if not (root / "index.html").exists() and pages is None:
        raise FileNotFoundError(f"{root} holds no built site (no index.html): run `make book` first")
    chromium = find_chromium()
    if chromium is None:
        raise RuntimeError(INSTALL_HINT)
    pages = site_pages(root) if pages is None else [Path(p).resolve() for p in pages]
    if not pages:
        raise FileNotFoundError(f"no HTML pages under {root}")
    if screenshots is not None:
        screenshots = Path(screenshots)
        screenshots.mkdir(parents=True, exist_ok=True)
    server, base = serve(root)
    problems: list[Problem] = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=[
                "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync"])
            context = browser.new_context(viewport={"width": width, "height": height})
            # one tab for every page (a new tab per page costs about as much as the check):
            # its listeners report to the page being checked now
            now: dict = {}
            page = context.new_page()
            # only requests that leave the site are intercepted (routing every request through
            # Python would slow every page)
            page.route(re.compile("^(?!" + re.escape(base) + "|data:|blob:|about:)"), _keep_inside(base, now))
            page.on("console", lambda msg: msg.type == "error" and now["found"].append(
                Problem(now["rel"], "console error", msg.text)))
            page.on("pageerror", lambda err: now["found"].append(Problem(now["rel"], "script error", str(err))))
            page.on("response", lambda resp: resp.status >= 400 and now["found"].append(
                Problem(now["rel"], "missing file", f"{resp.status} {resp.url.removeprefix(base)}")))
            for path in pages:
                rel = path.relative_to(root).as_posix()
                found: list[Problem] = []
                now.update(rel=rel, found=found)
                redirect = _redirect_target(path)
                if redirect is not None:  # e.g. the root index.html: check where it points, then move on
                    why = resolve_link(root, path, redirect)
                    problems += [Problem(rel, "broken redirect", why)] if why else []
                    continue
                page.goto(base + rel, wait_until="load")
                seen = page.evaluate(_INSPECT, WIDE_SELECTOR)
                found += [Problem(rel, "MathJax error", e) for e in seen["mathErrors"]]
                found += [Problem(rel, "image did not load", src) for src in seen["brokenImages"]]
                found += [Problem(rel, "image without real alt text", f"{src} (alt={alt!r})")
                          for src, alt in seen["images"] if poor_alt_text(src, alt)]
                found += [Problem(rel, "figure without a caption", src) for src in seen["uncaptioned"]]
                found += [Problem(rel, "wider than the text column", w) for w in seen["wide"]]
                found += [Problem(rel, "header word broken across lines", w) for w in seen["brokenWords"]]
                found += [Problem(rel, "output line wider than its box", w) for w in seen["wideOutput"]]
                for href in sorted(set(seen["links"])):
                    why = resolve_link(root, path, href)
                    if why:
                        found.append(Problem(rel, "broken link", why))
                if screenshots is not None:
                    shot = screenshots / (rel.replace("/", "__").removesuffix(".html") + ".png")
                    page.screenshot(path=str(shot), full_page=True)
                # leave the page before its problems are counted: what it logs while unloading is its own
                page.goto("about:blank")
                problems += found
            browser.close()
    finally:
        server.shutdown()
        server.server_close()
    return problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", nargs="?", default="_build/html", help="the built site (default _build/html)")
    parser.add_argument("--screenshots", default="_build/screenshots",
                        help="where to save a full-page screenshot of every page (default _build/screenshots)")
    args = parser.parse_args(argv)
    try:
        import playwright  # noqa: F401
    except ImportError:
        print(f"check_site: Playwright's Python package is missing; {INSTALL_HINT}", file=sys.stderr)
        return 2
    if find_chromium() is None:
        print(f"check_site: no Chromium found; {INSTALL_HINT}", file=sys.stderr)
        return 2
    try:
        problems = check_site(args.root, args.screenshots)
    except FileNotFoundError as err:
        print(f"check_site: {err}", file=sys.stderr)
        return 2
    pages = len(site_pages(Path(args.root).resolve()))
    for problem in problems:
        print(problem)
    print(f"check_site: {pages} pages, {len(problems)} problems; screenshots in {args.screenshots}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
