"""The browser check of the built site (tools/check_site.py) finds each kind of problem it
promises to find, on a tiny site made here, and passes a page that has none of them."""

import base64
import importlib.util
import os
import shutil
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("check_site", ROOT / "tools" / "check_site.py")
check_site = importlib.util.module_from_spec(_spec)
sys.modules["check_site"] = check_site
_spec.loader.exec_module(check_site)

MATHJAX = Path(sysconfig.get_paths()["purelib"]) / "sphinx-mathjax-offline" / "static" / "mathjax"
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==")


def _need_chromium():
    if check_site.find_chromium() is None:
        if os.environ.get("CI"):
            pytest.fail(check_site.INSTALL_HINT)
        pytest.skip(check_site.INSTALL_HINT)


def _page(body: str, width: int = 600) -> str:
    # MathJax only where there is math: loading it takes about a second a page
    mathjax = ("""<script>window.MathJax = {"options": {"processHtmlClass": "math"}}</script>
<script defer src="mathjax/tex-chtml.js"></script>""" if 'class="math"' in body else "")
    return f"""<!DOCTYPE html><html><head><meta charset="utf-8">{mathjax}</head>
<body><article class="bd-article" style="width:{width}px"><h1 id="top">Title</h1>{body}</article></body></html>"""


GOOD = ('<p class="math">\\(f(x) = (x + c) \\bmod 16\\)</p>'
        '<figure><img src="dot.png" alt="A single dot" width="10"><figcaption>Fig. 1 A dot.</figcaption></figure>'
        '<a href="good.html#top">self</a> <a href="index.html">home</a> <a href="https://example.org/">out</a>'
        '<table><tr><th style="width:40px">left-to-right loss</th><td>1</td><td>2</td></tr></table>'
        '<div class="cell_output"><pre style="width:300px">short output</pre></div>')
BAD = {
    # the bug this check was built for: a JSON "\bmod" became a backspace followed by "mod"
    "math.html": ('<p class="math">\\(f(x) = (x + c) \bmod 16\\)</p>', "MathJax error"),
    "image.html": ('<figure><img src="missing.png" alt="A missing picture"><figcaption>Gone.</figcaption></figure>',
                   "image did not load"),
    "alt.html": ('<figure><img src="dot.png" alt="dot.png"><figcaption>A dot.</figcaption></figure>',
                 "image without real alt text"),
    "caption.html": ('<img src="dot.png" alt="A single dot">', "figure without a caption"),
    "empty-caption.html": ('<figure><img src="dot.png" alt="A single dot"><figcaption> </figcaption></figure>',
                           "figure without a caption"),
    "console.html": ('<script>console.error("boom")</script>', "console error"),
    "script.html": ("<script>undefinedFunction()</script>", "script error"),
    "request.html": ('<script src="https://example.org/x.js"></script>', "request outside the site"),
    "link.html": ('<a href="nowhere.html">gone</a>', "broken link"),
    "anchor.html": ('<a href="good.html#no-such-anchor">gone</a>', "broken link"),
    "wide.html": ('<table><tr><td style="min-width:900px">wide</td></tr></table>', "wider than the text column"),
    "output.html": ('<div class="cell_output"><pre style="width:300px;overflow:auto">' + "x" * 200 + "</pre></div>",
                    "output line wider than its box"),
    "header.html": ('<table><tr><th style="width:40px;overflow-wrap:anywhere">Throughput</th><td>1</td></tr></table>',
                    "header word broken across lines"),
}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("site")
    shutil.copytree(MATHJAX, root / "mathjax")
    (root / "dot.png").write_bytes(PNG)
    (root / "index.html").write_text('<meta http-equiv="Refresh" content="0; url=good.html" />')
    (root / "good.html").write_text(_page(GOOD))
    for name, (body, _) in BAD.items():
        (root / name).write_text(_page(body))
    return root


@pytest.fixture(scope="module")
def found(site, tmp_path_factory):
    """One browser run over every page of the tiny site: the problems, by page."""
    _need_chromium()
    shots = tmp_path_factory.mktemp("shots")
    pages = [site / "good.html", site / "index.html"] + [site / name for name in BAD]
    problems = check_site.check_site(site, shots, pages=pages)
    by_page = {p.name: [] for p in pages}
    for problem in problems:
        by_page[problem.page].append(problem)
    return by_page, shots


def test_a_clean_page_passes(found):
    by_page, shots = found
    assert by_page["good.html"] == [] and by_page["index.html"] == []
    assert (shots / "good.png").stat().st_size > 0


@pytest.mark.parametrize("name", sorted(BAD))
def test_each_kind_of_problem_is_found(found, name):
    problems = found[0][name]
    kinds = {p.kind for p in problems}
    assert BAD[name][1] in kinds, f"{name}: expected {BAD[name][1]!r}, found {problems}"
    # a script error or a 404 also logs to the console, and a missing image is a missing file too
    assert kinds <= {BAD[name][1], "console error", "missing file"}, problems


def test_a_broken_redirect_is_found(site, tmp_path):
    _need_chromium()
    (tmp_path / "index.html").write_text('<meta http-equiv="Refresh" content="0; url=book/intro.html" />')
    problems = check_site.check_site(tmp_path, None, pages=[tmp_path / "index.html"])
    assert [p.kind for p in problems] == ["broken redirect"]


def test_resolve_link_without_a_browser(site):
    assert check_site.resolve_link(site, site / "good.html", "good.html#top") is None
    assert check_site.resolve_link(site, site / "good.html", "https://example.org/") is None
    assert "missing file" in check_site.resolve_link(site, site / "good.html", "nope.html")
    assert "no element" in check_site.resolve_link(site, site / "good.html", "good.html#nope")
    assert "leaves the site" in check_site.resolve_link(site, site / "good.html", "../../etc/passwd")


def test_poor_alt_text():
    assert check_site.poor_alt_text("a/b.png", "")
    assert check_site.poor_alt_text("a/b.png", "b.png")
    assert check_site.poor_alt_text("a/b.png", "../../_images/b.png")
    assert not check_site.poor_alt_text("a/b.png", "Loss against steps for four models")
    assert not check_site.poor_alt_text("a/b.png", "Validation loss for heads of size d/h")


def test_the_command_says_how_to_install_chromium(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(check_site, "find_chromium", lambda: None)
    assert check_site.main([str(tmp_path)]) == 2
    assert "apt-get install chromium" in capsys.readouterr().err


def test_the_command_refuses_a_folder_without_a_site(capsys, tmp_path):
    _need_chromium()
    assert check_site.main([str(tmp_path)]) == 2
    assert "make book" in capsys.readouterr().err


def test_raw_myst_is_recognised_in_rendered_markdown():
    spec = importlib.util.spec_from_file_location("check_lab", ROOT / "tools" / "check_lab.py")
    check_lab = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(check_lab)
    raw = "See {doc}`../x` and {cite:p}`su2023` and {glue:text}`loss:.2f` nats."
    assert check_lab.RAW_MYST.findall(raw) == ["{doc}`", "{cite:p}`", "{glue:text}`"]
    assert check_lab.RAW_MYST.findall("A set {1, 2} and `code` and f(x) = {x}") == []
