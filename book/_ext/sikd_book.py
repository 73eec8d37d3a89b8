"""Small additions to the Jupyter Book 1 toolchain, loaded from _config.yml (sphinx.local_extensions).

1. Rebuild a page when a notebook it pastes glued outputs from changes. ``book/results.md`` shows
   outputs of ``notebooks/06_five_tasks.ipynb`` through ``{glue} key`` + ``:doc:``; myst-nb resolves
   those references at write time but records no dependency, so after the notebook is edited (and
   re-executed) an incremental build would keep the old results page. Recording the notebook as a
   dependency of the page makes Sphinx re-read the page whenever the notebook's source changes.

2. Write each inline script once per page. With Sphinx 7.4, the inline scripts that
   sphinx-togglebutton and sphinx-thebe register reach the page twice (once from the builder, once
   from the registry, with filename None and ''); the second copy of ``const THEBE_JS_URL = ...`` is a
   JavaScript SyntaxError in every page's console.

3. ``{repo-literal} <language>``: a code block whose ``<repository-url>`` placeholders are replaced by
   ``repository.url`` from _config.yml, so that URL is written in one place only (the book's BibTeX
   entry in book/intro.md uses it). MyST substitutions do not work inside code blocks.

4. ``{bib-entry} <key>``: the entry ``<key>`` of the book's bibliography (``bibtex_bibfiles`` in
   _config.yml), as a BibTeX code block, so the entry the intro page shows is read from
   ``book/references.bib``, the one source of the paper's BibTeX entry.

5. ``{paper-differences} <preset>``: the table of every difference between the paper's setting and the
   preset's, from :func:`sikd_utils.paper.differences`, so the page shows what the code runs.

6. ``{calibration-table}``: the difficulty calibration (``book/results/calibration.csv``) as each task's chosen
   level by :func:`sikd_utils.calibrate.choose_levels`, or a note that no calibration run is committed yet.

7. ``static/sikd_book.css``: outputs wider than the text column (a glued table pasted into a page)
   scroll in their own box instead of pushing the page sideways.
"""

from __future__ import annotations

import re
from pathlib import Path

from docutils import nodes
from myst_nb.ext.glue.utils import PendingGlueReference
from sphinx.util.docutils import SphinxDirective

REPOSITORY_URL_PLACEHOLDER = "<repository-url>"


def _note_glue_sources(app, doctree) -> None:
    env = app.env
    for node in doctree.findall(PendingGlueReference):
        env.note_dependency(env.doc2path(node.refdoc))


def _dedupe_scripts(app, pagename, templatename, context, doctree) -> None:
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, unique = set(), []
    for script in scripts:
        # an inline script is registered once with filename None and once with '' (Sphinx's registry copy)
        filename = getattr(script, "filename", script) or ""
        key = (filename, tuple(sorted(getattr(script, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


class RepoLiteral(SphinxDirective):
    """A literal block with ``<repository-url>`` replaced by the book's repository URL."""

    required_arguments = 1  # the language, for highlighting
    has_content = True

    def run(self):
        url = self.config.html_theme_options.get("repository_url", "")
        if not url:
            raise self.error("repo-literal: no repository.url in _config.yml")
        text = "\n".join(self.content).replace(REPOSITORY_URL_PLACEHOLDER, url)
        node = nodes.literal_block(text, text, language=self.arguments[0])
        self.set_source_info(node)
        return [node]


def bib_entry(text: str, key: str) -> str | None:
    """The entry ``key`` of a BibTeX file's ``text``, from its ``@type{key,`` line to the ``}`` line that
    closes it (entries are written one field a line, as in book/references.bib); None when absent."""
    found = re.search(r"^@\w+\{" + re.escape(key) + r",.*?^\}", text, re.S | re.M)
    return found.group(0) if found else None


class BibEntry(SphinxDirective):
    """A BibTeX code block of one entry of the book's bibliography, by key."""

    required_arguments = 1  # the key

    def run(self):
        key = self.arguments[0]
        for name in self.config.bibtex_bibfiles:
            path = Path(self.env.srcdir, name)
            self.env.note_dependency(str(path))
            entry = bib_entry(path.read_text(encoding="utf-8"), key)
            if entry is not None:
                node = nodes.literal_block(entry, entry, language="bibtex")
                self.set_source_info(node)
                return [node]
        raise self.error(f"bib-entry: no entry {key!r} in {', '.join(self.config.bibtex_bibfiles)}")


def table_node(header: list[str], rows: list[list[str]]) -> nodes.table:
    """A plain docutils table of strings (header row first)."""
    table = nodes.table(classes=["paper-differences"])
    group = nodes.tgroup(cols=len(header))
    table += group
    group.extend(nodes.colspec(colwidth=1) for _ in header)

    def row_of(cells):
        row = nodes.row()
        for cell in cells:
            entry = nodes.entry()
            entry += nodes.paragraph(text=str(cell))
            row += entry
        return row

    head, body = nodes.thead(), nodes.tbody()
    head += row_of(header)
    body.extend(row_of(r) for r in rows)
    group += head
    group += body
    return table


class PaperDifferences(SphinxDirective):
    """The paper's setting beside a preset's, one row per difference."""

    required_arguments = 1  # the preset

    def run(self):
        from sikd_utils import paper, presets

        self.env.note_dependency(paper.__file__)
        self.env.note_dependency(presets.__file__)
        frame = paper.differences(self.arguments[0])
        node = table_node(list(frame.columns), frame.astype(str).values.tolist())
        self.set_source_info(node)
        return [node]


class CalibrationTable(SphinxDirective):
    """Each task's calibrated difficulty level, from the committed calibration run."""

    def run(self):
        import pandas as pd

        from sikd_utils.calibrate import CLEAN_TOLERANCE, TARGET_TOLERANCE, choose_levels

        path = Path(self.env.srcdir, "book", "results", "calibration.csv")
        self.env.note_dependency(str(path))
        if not path.exists():
            command = "python -m sikd_utils calibrate --preset gpu --levels 0 1 2 3 4 --seeds 0 1"
            paragraph = nodes.paragraph()
            paragraph += nodes.Text("No calibration run is committed yet; it needs a GPU: ")
            paragraph += nodes.literal(command, command)
            paragraph += nodes.Text(f". Tolerances: clean Dice within {CLEAN_TOLERANCE:g} points of the paper's "
                                    f"intra-domain baseline, target Dice within {TARGET_TOLERANCE:g} points of its "
                                    "cross-domain baseline.")
            return [paragraph]
        table = choose_levels(pd.read_csv(path)).round(1)
        node = table_node(list(table.columns), table.astype(str).values.tolist())
        self.set_source_info(node)
        return [node]


def _add_static(app) -> None:
    app.config.html_static_path.append(str(Path(__file__).parent / "static"))


def setup(app):
    app.connect("builder-inited", _add_static)
    app.add_css_file("sikd_book.css")
    app.add_directive("repo-literal", RepoLiteral)
    app.add_directive("calibration-table", CalibrationTable)
    app.add_directive("paper-differences", PaperDifferences)
    app.add_directive("bib-entry", BibEntry)
    app.connect("doctree-read", _note_glue_sources)
    # late, so that scripts other extensions add for this page are seen too
    app.connect("html-page-context", _dedupe_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "1.0"}
