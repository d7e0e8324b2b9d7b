"""Keep the built site self-contained.

Jupyter Book always loads sphinx-thebe, which adds a script that names a Thebe
bundle on unpkg.com, and on this toolchain adds it twice (a console error:
"Identifier 'THEBE_JS_URL' has already been declared"). The book does not use
Thebe (live code cells need a remote kernel), so its scripts are dropped from
every page.
"""


def _is_thebe(js):
    name = getattr(js, "filename", None) or str(js)
    body = (getattr(js, "attributes", None) or {}).get("body", "")
    return "thebe" in (name or "").lower() or "THEBE_JS_URL" in body


def drop_thebe_scripts(app, pagename, templatename, context, doctree):
    if "script_files" in context:
        context["script_files"] = [js for js in context["script_files"] if not _is_thebe(js)]


def setup(app):
    app.connect("html-page-context", drop_thebe_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
