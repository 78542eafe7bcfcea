"""A Sphinx extension of the book: each page loads each script once.

Jupyter Book 1 registers sphinx-thebe's configuration script twice, and the second copy
fails in the browser ("Identifier 'THEBE_JS_URL' has already been declared"). The book has
no live-code buttons, so the thebe scripts are dropped, and any other script that appears
twice on a page keeps its first copy only.
"""


def _one_copy_each(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, kept = set(), []
    for script in scripts:
        filename = getattr(script, "filename", script)
        attributes = getattr(script, "attributes", {}) or {}
        body = attributes.get("body", "")
        if "thebe" in str(filename) or "THEBE_JS_URL" in body:
            continue
        key = (str(filename), body)
        if key not in seen:
            seen.add(key)
            kept.append(script)
    scripts[:] = kept


def setup(app):
    app.connect("html-page-context", _one_copy_each, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
