"""Turn the book's MyST Markdown into plain Markdown that any Jupyter renders.

The chapters are written in MyST for Jupyter Book: ``{glue:text}`` numbers, ``{cite}``,
``{term}``, ``{doc}`` and ``{ref}`` roles, and ``exercise`` / ``solution`` / ``admonition``
directives. Outside the book (plain JupyterLab, Colab, nbgrader) those show as raw text.
:class:`PlainMarkdown` rewrites a cell's Markdown with

* every glued number replaced by its formatted value, taken from the notebook as the book
  executed it (``_build/jupyter_execute``), with myst-nb's own formatting function;
* citations as "(Author Year)", glossary terms and cross-references as their text, links to
  other chapters as links to the chapter notebook;
* an exercise as a heading "Exercise N.M: title" followed by its statement, an admonition as
  a bold title followed by its text; solution directives are left for the caller to handle
  (:func:`split_solutions`).

It raises ``ValueError`` on a role or directive it does not know, so a new MyST construct in a
chapter cannot silently reach students as raw text.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXECUTED = ROOT / "_build" / "jupyter_execute" / "notebooks"

ROLE = re.compile(r"\{([a-z][a-z:\-]*)\}`([^`]*)`")
FENCE = re.compile(r"^(`{3,})\{([a-z\-]+)\}[ \t]*(.*)$")
LABEL_LINE = re.compile(r"^\(([\w\-]+)\)=[ \t]*$", re.M)


def executed_glue(stem: str, executed_dir: Path = EXECUTED) -> dict[str, str]:
    """The glued values (their ``text/plain`` form) of the chapter ``stem`` as the book's build
    executed it (myst-nb writes them to ``<stem>.glue.json``)."""
    path = executed_dir / f"{stem}.glue.json"
    if not path.exists() and (executed_dir / f"{stem}.ipynb").exists():
        return {}                       # executed, and glues nothing
    if not path.exists():
        raise FileNotFoundError(
            f"{path} is missing: build the book first (make book); the student and course "
            "notebooks take the glued numbers from the book's own execution")
    return {name: out["data"]["text/plain"] for name, out in json.loads(path.read_text()).items()}


def _bib_entries(bib_path: Path) -> dict[str, str]:
    """A one-line reference (authors, year, title, venue, URL) for every key of the .bib."""
    from pybtex.database import parse_file

    entries = {}
    for key, entry in parse_file(str(bib_path)).entries.items():
        f = entry.fields
        people = entry.persons.get("author") or entry.persons.get("editor") or []
        names = ", ".join(" ".join(p.first_names + p.last_names) for p in people)
        who = names or f.get("organization") or f.get("publisher") or ""
        venue = f.get("journal") or f.get("booktitle") or f.get("publisher") or \
            f.get("howpublished") or ""
        url = f.get("url") or ""
        text = f"{who} ({f.get('year', 'n.d.')}). *{f.get('title', key)}*."
        if venue and venue not in who:
            text += f" {venue}."
        if url:
            text += f" <{url}>"
        entries[key] = text.replace("{", "").replace("}", "").replace("\\", "")
    return entries


def _bib_labels(bib_path: Path) -> dict[str, str]:
    from pybtex.database import parse_file

    labels = {}
    for key, entry in parse_file(str(bib_path)).entries.items():
        people = entry.persons.get("author") or entry.persons.get("editor") or []
        names = [" ".join(p.last_names) for p in people]
        if not names:
            who = entry.fields.get("organization") or entry.fields.get("publisher") \
                or entry.fields.get("title", key)
        elif len(names) == 1:
            who = names[0]
        elif len(names) == 2:
            who = f"{names[0]} and {names[1]}"
        else:
            who = f"{names[0]} et al."
        who = who.replace("{", "").replace("}", "")
        labels[key] = f"{who} ({entry.fields.get('year', 'n.d.')})"
    return labels


def _titles() -> tuple[dict[str, str], dict[str, str]]:
    """Titles of the chapters and book pages, and the text of every section label."""
    docs, labels = {}, {}
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        nb = json.loads(path.read_text())
        text = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
        title = re.search(r"^# (.+)$", text, re.M).group(1).strip()
        docs[path.stem] = title
        for m in re.finditer(r"^\(([\w\-]+)\)=[ \t]*\n#+ (.+)$", text, re.M):
            labels[m.group(1)] = m.group(2).strip()
    for path in sorted((ROOT / "book").glob("*.md")):
        m = re.search(r"^# (.+)$", path.read_text(), re.M)
        if m:
            docs[path.stem] = m.group(1).strip()
    return docs, labels


@dataclass
class PlainMarkdown:
    """Converter for the Markdown of one notebook (``glue``: its glued values)."""

    glue: dict[str, str]
    notebook: str = ""
    bib: dict[str, str] = field(default_factory=lambda: _bib_labels(ROOT / "book" / "references.bib"))
    titles: tuple = field(default_factory=_titles)
    cited: list = field(default_factory=list)

    def references_markdown(self) -> str:
        """A "References" cell for the works this notebook's Markdown cited, in citation order."""
        if not self.cited:
            return ""
        entries = _bib_entries(ROOT / "book" / "references.bib")
        return "## References\n\n" + "\n".join(f"* {entries[k]}" for k in self.cited) + "\n"

    def role(self, match: re.Match) -> str:
        from myst_nb.core.variables import format_plain_text

        name, text = match.group(1), match.group(2)
        explicit = re.fullmatch(r"(.*?)\s*<([^<>]+)>", text, re.S)
        shown, target = (explicit.group(1), explicit.group(2)) if explicit else (None, text)
        docs, labels = self.titles
        if name == "glue:text":
            key, _, spec = text.partition(":")
            if key not in self.glue:
                raise ValueError(f"{self.notebook}: glued value {key!r} was not found in the "
                                 "executed notebook")
            return format_plain_text(self.glue[key], spec)
        if name == "cite":
            keys = [k.strip() for k in text.split(",")]
            missing = [k for k in keys if k not in self.bib]
            if missing:
                raise ValueError(f"{self.notebook}: unknown citation {missing}")
            self.cited.extend(k for k in keys if k not in self.cited)
            return "; ".join(self.bib[k] for k in keys)   # "Hinton et al. (2015)"
        if name == "term":
            return shown or target
        if name == "doc":
            stem = Path(target).name
            if stem not in docs:
                raise ValueError(f"{self.notebook}: unknown document {target!r}")
            title = shown or docs[stem]
            if (ROOT / "notebooks" / f"{stem}.ipynb").exists():
                return f"[{title}]({stem}.ipynb)"
            return f"the book's *{title}* page"
        if name == "ref":
            ex = re.fullmatch(r"ex-(\d+)-(\d+)", target)
            if shown:
                return shown
            if ex:
                return f"Exercise {ex.group(1)}.{ex.group(2)}"
            if target in labels:
                return labels[target]
            raise ValueError(f"{self.notebook}: unknown reference {target!r}")
        raise ValueError(f"{self.notebook}: no plain-Markdown form for the role {{{name}}}")

    def convert(self, source: str) -> str:
        """Plain Markdown for the MyST Markdown ``source`` (solutions must be removed first)."""
        out, lines, i = [], source.split("\n"), 0
        while i < len(lines):
            m = FENCE.match(lines[i])
            if not m:
                out.append(lines[i])
                i += 1
                continue
            fence, name, arg = m.groups()
            body, options, i = [], {}, i + 1
            while i < len(lines) and re.match(r"^:[\w\-]+:", lines[i]):
                key, _, value = lines[i][1:].partition(":")
                options[key] = value.strip()
                i += 1
            while i < len(lines) and lines[i].rstrip() != fence:
                body.append(lines[i])
                i += 1
            i += 1                                   # the closing fence
            text = "\n".join(body).strip("\n")
            if name == "exercise":
                ex = re.fullmatch(r"ex-(\d+)-(\d+)", options.get("label", ""))
                if not ex:
                    raise ValueError(f"{self.notebook}: exercise without an ex-N-M label")
                # a heading, so that the exercise is in Jupyter's table of contents
                out.append(f"### Exercise {ex.group(1)}.{ex.group(2)}: {arg.strip()}\n\n{text}")
            elif name == "admonition":
                out.append(f"**{arg.strip()}**\n\n{text}")
            else:
                raise ValueError(f"{self.notebook}: no plain-Markdown form for the directive "
                                 f"{{{name}}} (remove solutions before converting)")
        text = LABEL_LINE.sub("", "\n".join(out))
        text = ROLE.sub(self.role, text)
        # "exercise {ref}`ex-10-4`" reads "exercise Exercise 10.4" once the reference is text
        return re.sub(r"\b([Ee]xercises?) Exercise (\d)", r"\1 \2", text)


def split_solutions(cells):
    """Split a notebook's cells into the exercises' solutions and everything else.

    Returns ``(kept, solutions)``: ``kept`` is the list of ``(cell, label_or_None)`` for every
    cell outside a solution, with ``{solution}`` blocks cut out of its Markdown and the label
    of the exercise whose statement the cell ends with; ``solutions`` maps an exercise label
    to ``(markdown, code_cells)``: the worked solution's text and the code cells inside a
    ``solution-start`` / ``solution-end`` pair.
    """
    kept, solutions, current = [], {}, None
    block = re.compile(r"```\{solution\}[ \t]*(ex-[\d\-]+)[^\n]*\n(.*?)\n```[ \t]*\n?", re.S)
    start = re.compile(r"```\{solution-start\}[ \t]*(ex-[\d\-]+)[^\n]*\n(?::[\w\-]+:[^\n]*\n)*```"
                       r"[ \t]*\n?", re.S)
    for cell in cells:
        src = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
        if cell["cell_type"] == "markdown" and "{solution-end}" in src:
            current = None
            continue
        if current is not None:
            md, code = solutions[current]
            if cell["cell_type"] == "markdown":
                solutions[current] = (md + "\n\n" + src, code)
            else:
                code.append(cell)
            continue
        if cell["cell_type"] == "markdown":
            for m in block.finditer(src):
                text = re.sub(r"^:[\w\-]+:[^\n]*\n", "", m.group(2), flags=re.M)
                solutions[m.group(1)] = (text.strip(), [])
            src = block.sub("", src)
            m = start.search(src)
            if m:
                current = m.group(1)
                solutions[current] = (src[m.end():].strip(), [])
                src = src[:m.start()]
            labels = re.findall(r":label: (ex-\d+-\d+)", src)
            if src.strip():
                kept.append((dict(cell, source=src.rstrip() + "\n"), labels[-1] if labels else None))
            continue
        kept.append((cell, None))
    return kept, solutions
