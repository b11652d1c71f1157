"""The report as a list of blocks (headings, paragraphs, tables, images), rendered twice: as one
self-contained HTML page (images as base64 PNG; no external URL, no JavaScript) and as markdown.
Sections build blocks once, so the page and its markdown twin always say the same."""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Sequence
from dataclasses import dataclass

from causvid_perf.judge.verdict import IMPROVEMENT, NO_BASELINE, NOT_MEASURED, REGRESSION


@dataclass
class Cell:
    text: str
    css: str = ""  # "bad", "good", "muted" in HTML; bad/good are bold in markdown


@dataclass
class Block:
    kind: str  # "h2", "h3", "p", "table", "img", "pre", "csv" (a plot's data, a file beside report.md)
    text: str = ""
    headers: Sequence[str] = ()
    rows: Sequence[Sequence[Cell | str]] = ()
    image: bytes = b""
    name: str = ""  # image or CSV file name in the markdown folder
    data: str = ""  # the CSV text of a "csv" block


# A plot's CSV up to this many characters is embedded in the HTML page (self-contained); a longer one
# (a history of hundreds of runs) is linked to its file beside the page, so the page stays small.
EMBEDDED_CSV_LIMIT = 200_000
STATE_CSS = {REGRESSION: "bad", IMPROVEMENT: "good", NO_BASELINE: "muted", NOT_MEASURED: "muted"}


def state_cell(state: str) -> Cell:
    """A verdict's state, coloured by what it means."""
    return Cell(state, STATE_CSS.get(state, ""))


CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px auto;max-width:1240px;color:#1d2330;
padding:0 16px;line-height:1.4}
h1{font-size:1.6em;margin-bottom:0}h2{border-bottom:2px solid #d8dde6;padding-bottom:4px;margin-top:2em}
h3{font-size:1.02em;margin-bottom:.4em}p.meta{color:#5b6476;margin-top:4px}
table{border-collapse:collapse;margin:.5em 0 1em;font-size:13px}
th,td{border:1px solid #d8dde6;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f1f3f7}tr:nth-child(even) td{background:#fafbfc}
tbody tr td.bad{color:#a40e26;font-weight:700;background:#fde8eb}
tbody tr td.good{color:#11663a;font-weight:700;background:#e6f6ec}
td.muted{color:#7a8294}img{max-width:100%;border:1px solid #e3e6ec;margin:4px 0 12px}
pre{background:#f6f8fa;padding:8px;overflow:auto}
"""


def render_html(title: str, subtitle: str, blocks: Sequence[Block]) -> str:
    esc = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f"<title>{esc(title)}</title>",
        f"<style>{CSS}</style>",
        "</head>",
        "<body>",
        f"<h1>{esc(title)}</h1>",
        f'<p class="meta">{esc(subtitle)}</p>',
    ]
    for block in blocks:
        if block.kind in ("h2", "h3"):
            anchor = re.sub(r"[^a-z0-9]+", "-", block.text.lower()).strip("-")
            parts.append(f'<{block.kind} id="{anchor}">{esc(block.text)}</{block.kind}>')
        elif block.kind == "p":
            parts.append(f"<p>{esc(block.text)}</p>")
        elif block.kind == "pre":
            parts.append(f"<pre>{esc(block.text)}</pre>")
        elif block.kind == "table":
            head = "".join(f"<th>{esc(h)}</th>" for h in block.headers)
            body = []
            for row in block.rows:
                cells = []
                for cell in row:
                    cell = cell if isinstance(cell, Cell) else Cell(str(cell))
                    css = f' class="{cell.css}"' if cell.css else ""
                    cells.append(f"<td{css}>{esc(cell.text)}</td>")
                body.append(f"<tr>{''.join(cells)}</tr>")
            parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>")
        elif block.kind == "img":
            data = base64.b64encode(block.image).decode("ascii")
            parts.append(f'<img src="data:image/png;base64,{data}" alt="{esc(block.text)}">')
        elif block.kind == "csv" and len(block.data) > EMBEDDED_CSV_LIMIT:  # a long history's: linked, not embedded
            link = f'<a href="{esc(block.name)}">{esc(block.name)}</a>'
            size = f"{len(block.data) / 1e6:.1f} MB"
            parts.append(
                f'<p class="meta">{esc(block.text)}: {link} (beside this page: {size}, too large to embed)</p>'
            )
        elif block.kind == "csv":  # embedded, so the page stays one self-contained file
            data = base64.b64encode(block.data.encode("utf-8")).decode("ascii")
            link = f'<a download="{esc(block.name)}" href="data:text/csv;base64,{data}">{esc(block.name)}</a>'
            parts.append(f'<p class="meta">{esc(block.text)}: {link} (also beside report.md)</p>')
    parts += ["</body>", "</html>", ""]
    return "\n".join(parts)


def _md_cell(cell: Cell | str) -> str:
    cell = cell if isinstance(cell, Cell) else Cell(str(cell))
    text = cell.text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")
    return f"**{text}**" if cell.css in ("bad", "good") and text else text


def render_markdown(title: str, subtitle: str, blocks: Sequence[Block], *, images: bool = True) -> str:
    """The markdown twin; images=False (a CI step summary) names the PNGs instead of linking them."""
    lines = [f"# {title}", "", subtitle, ""]
    for block in blocks:
        if block.kind == "h2":
            lines += [f"## {block.text}", ""]
        elif block.kind == "h3":
            lines += [f"### {block.text}", ""]
        elif block.kind == "p":
            lines += [block.text, ""]
        elif block.kind == "pre":
            lines += ["```", block.text, "```", ""]
        elif block.kind == "table":
            headers = [_md_cell(h) or " " for h in block.headers]
            lines.append("| " + " | ".join(headers) + " |")
            lines.append("|" + "|".join(" --- " for _ in headers) + "|")
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in block.rows]
            lines.append("")
        elif block.kind == "img":
            if images:
                lines += [f"![{block.text}]({block.name})", ""]
            else:
                lines += [f"_({block.text}: see {block.name} in the report folder)_", ""]
        elif block.kind == "csv":
            lines += [
                f"{block.text}: [{block.name}]({block.name})" if images else f"_({block.text}: {block.name})_",
                "",
            ]
    return "\n".join(lines).rstrip("\n") + "\n"
