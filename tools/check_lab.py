"""Open a chapter in a running JupyterLab, run all its cells, and check what a reader sees.

    python tools/check_lab.py [chapters/01_four_architectures/four_architectures.ipynb]

A reader who runs the book locally (``make lab``) reads the chapters in JupyterLab, where
the book's MyST (``{doc}`` links, ``{cite}`` references, ``{glue}`` numbers) is rendered by
the ``jupyterlab-myst`` extension pinned in ``requirements-lab.txt``. This command starts
JupyterLab on the loopback interface with a throwaway configuration, opens the notebook in
headless Chromium, runs every cell, and fails on an error output or on MyST role text left
raw in a rendered markdown cell. Nothing is saved to the notebook. ``make check-lab`` runs it.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from check_site import INSTALL_HINT, find_chromium  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_NOTEBOOK = "chapters/01_four_architectures/four_architectures.ipynb"
#: MyST role or directive text that a renderer left as source, e.g. {doc}`x` or {glue:}`y`.
RAW_MYST = re.compile(r"\{[a-z][a-z:_-]*\}`")

_STATE = """
() => {
  const app = window.jupyterapp;
  const panel = app && app.shell.currentWidget;
  if (!panel || !panel.content || !panel.sessionContext || !panel.sessionContext.session) { return null; }
  const kernel = panel.sessionContext.session.kernel;
  const cells = panel.content.widgets;
  return {
    kernel: kernel ? kernel.status : "none",
    code: cells.filter(c => c.model.type === "code").length,
    executed: cells.filter(c => c.model.type === "code" && c.model.executionCount !== null).length,
    errors: cells.flatMap((c, i) => c.model.type !== "code" ? [] :
      c.model.outputs.toJSON().filter(o => o.output_type === "error").map(o => `cell ${i}: ${o.ename}: ${o.evalue}`)),
    markdown: cells.filter(c => c.model.type === "markdown").map(c => c.node.innerText),
  };
}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_server(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"JupyterLab exited with code {proc.returncode} before it served {url}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"JupyterLab did not answer at {url} within {timeout:.0f} s")


def check_lab(notebook: str | Path = DEFAULT_NOTEBOOK, timeout: float = 300, screenshot: str | Path | None = None) -> list[str]:
    """Run every cell of ``notebook`` in a real JupyterLab; return the problems found."""
    from playwright.sync_api import sync_playwright

    notebook = Path(notebook)
    path = (ROOT / notebook).resolve() if not notebook.is_absolute() else notebook
    if not path.exists():
        raise FileNotFoundError(f"no notebook at {path}")
    chromium = find_chromium()
    if chromium is None:
        raise RuntimeError(INSTALL_HINT)
    port = _free_port()
    base = f"http://127.0.0.1:{port}/"
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="whydec-lab-") as home:
        env = dict(os.environ, JUPYTER_CONFIG_DIR=f"{home}/config", JUPYTER_RUNTIME_DIR=f"{home}/runtime",
                   JUPYTERLAB_SETTINGS_DIR=f"{home}/settings", JUPYTERLAB_WORKSPACES_DIR=f"{home}/workspaces")
        cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
               f"--ServerApp.root_dir={ROOT}", "--IdentityProvider.token=", "--ServerApp.password=",
               "--ServerApp.disable_check_xsrf=True", "--LabApp.expose_app_in_browser=True",
               "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
               "--LabApp.extension_manager=readonly", "--allow-root"]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            _wait_for_server(base + "api", proc)
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=chromium, args=[
                    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"])
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(base)
                           else route.abort())
                rel = path.relative_to(ROOT).as_posix()
                page.goto(f"{base}lab/tree/{rel}", wait_until="load")
                page.wait_for_function(_STATE, timeout=120_000)
                page.wait_for_function("() => window.jupyterapp.shell.currentWidget.sessionContext.isReady",
                                       timeout=120_000)
                page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
                deadline = time.monotonic() + timeout
                state = page.evaluate(_STATE)
                while time.monotonic() < deadline:
                    state = page.evaluate(_STATE)
                    if state["executed"] == state["code"] and state["kernel"] == "idle":
                        break
                    time.sleep(1)
                else:
                    problems.append(f"{rel}: {state['executed']} of {state['code']} code cells ran within {timeout:.0f} s")
                problems += [f"{rel}: error output in {e}" for e in state["errors"]]
                for i, text in enumerate(state["markdown"]):
                    for raw in RAW_MYST.findall(text):
                        problems.append(f"{rel}: markdown cell {i} shows raw MyST {raw!r}")
                if not any(t.strip() for t in state["markdown"]):
                    problems.append(f"{rel}: no rendered markdown found")
                if screenshot is not None:
                    page.screenshot(path=str(screenshot))
                page.evaluate("() => window.jupyterapp.commands.execute('kernelmenu:shutdown')")
                browser.close()
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
    return problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebook", nargs="?", default=DEFAULT_NOTEBOOK)
    parser.add_argument("--screenshot", default="_build/screenshots/lab.png")
    args = parser.parse_args(argv)
    try:
        import jupyterlab  # noqa: F401
        import jupyterlab_myst  # noqa: F401
    except ImportError as err:
        print(f"check_lab: {err.name} is missing: run `make lab-env` (installs requirements-lab.txt)", file=sys.stderr)
        return 2
    if find_chromium() is None:
        print(f"check_lab: no Chromium found; {INSTALL_HINT}", file=sys.stderr)
        return 2
    Path(args.screenshot).parent.mkdir(parents=True, exist_ok=True)
    problems = check_lab(args.notebook, screenshot=args.screenshot)
    for problem in problems:
        print(problem)
    print(f"check_lab: {args.notebook}: {len(problems)} problems; screenshot {args.screenshot}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
