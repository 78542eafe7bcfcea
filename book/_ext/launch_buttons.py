"""A Sphinx extension of the book: Colab and Binder launch buttons where the book is published.

The repository is only known where the book is published, so the publishing workflow
names it in the environment: ``BOOK_REPOSITORY`` (``owner/name`` on GitHub, as GitHub
Actions' ``github.repository``) and optionally ``BOOK_BRANCH`` (default ``main``). With
them, every notebook page gets Colab and Binder buttons and a link to the repository;
without them (a local build, CI) the configuration is left exactly as ``_config.yml``
has it: no launch buttons, the download button only. Nothing is fetched at build time.

What a notebook needs on Colab (the package and its stored results) its first cell
installs from the repository it was opened from (``tools/launch.py``); Binder builds the
repository with ``binder/postBuild``.
"""

import os
import re

from sphinx.errors import ConfigError

REPOSITORY = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?/[A-Za-z0-9._-]+")
BRANCH = re.compile(r"[A-Za-z0-9._/-]+")


def launch_options(repository: str, branch: str = "main") -> dict:
    """The theme options that add the launch buttons for ``repository`` (``owner/name``
    on GitHub) at ``branch``. Defined in "How to read this book"."""
    if not isinstance(repository, str) or not REPOSITORY.fullmatch(repository):
        raise ConfigError(f"BOOK_REPOSITORY must be a GitHub repository as owner/name, got {repository!r}")
    if not isinstance(branch, str) or not BRANCH.fullmatch(branch) or ".." in branch:
        raise ConfigError(f"BOOK_BRANCH must be a branch name, got {branch!r}")
    return {
        "repository_url": f"https://github.com/{repository}",
        "repository_branch": branch,
        "path_to_docs": "",
        "use_repository_button": True,
        "launch_buttons": {
            "notebook_interface": "jupyterlab",
            "binderhub_url": "https://mybinder.org",
            "colab_url": "https://colab.research.google.com",
            "jupyterhub_url": "",
            "thebe": False,
        },
    }


def _add_launch_buttons(app, config):
    repository = os.environ.get("BOOK_REPOSITORY", "").strip()
    if not repository:
        return
    options = dict(config.html_theme_options or {})
    options.update(launch_options(repository, os.environ.get("BOOK_BRANCH", "").strip() or "main"))
    config.html_theme_options = options


def setup(app):
    app.connect("config-inited", _add_launch_buttons)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
