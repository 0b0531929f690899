"""A Sphinx extension for the book: Jupyter Book 1.x with sphinx-thebe 0.3.1 registers
sphinx-thebe's inline configuration script twice (once with filename ``None``, once ``''``), so
every page declares ``const THEBE_JS_URL`` twice and the browser throws a SyntaxError. Each page
keeps the first of any repeated script."""

from __future__ import annotations


def _unique_scripts(app, pagename, templatename, context, doctree) -> None:
    seen, unique = set(), []
    for script in context.get("script_files", []):
        attributes = getattr(script, "attributes", {}) or {}
        key = (getattr(script, "filename", None) or "", tuple(sorted(attributes.items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


def setup(app):
    app.connect("html-page-context", _unique_scripts)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
