"""Writes the report as one self-contained HTML file: PNGs embedded as base64 data URIs, inline CSS,
and a little inline JavaScript that sorts tables on a header click and, once the page has loaded,
marks every image's load status (``data-loaded="true|false"``) and the table row counts on
``#report-status`` so a headless browser can check the page.
"""

from __future__ import annotations

import base64
from html import escape
from pathlib import Path

from fuselab.report.document import Section, Table

_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0;color:#222;
background:#fafafa;line-height:1.45}
header{background:#1f3a5f;color:#fff;padding:18px 32px}
header h1{margin:0 0 4px 0;font-size:24px} header p{margin:2px 0;opacity:.9}
nav{padding:8px 32px;background:#e8edf3;position:sticky;top:0;z-index:2;font-size:14px}
nav a{margin-right:14px;color:#1f3a5f;text-decoration:none} nav a:hover{text-decoration:underline}
main{padding:8px 32px 40px 32px;max-width:1500px}
section{background:#fff;border:1px solid #dde3ea;border-radius:6px;margin:18px 0;padding:6px 20px 16px}
h2{color:#1f3a5f;border-bottom:1px solid #dde3ea;padding-bottom:4px}
.table-wrap{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;font-size:13px;margin:8px 0;max-width:100%}
th,td{border:1px solid #d5dbe1;padding:4px 8px;text-align:right;vertical-align:top;
white-space:nowrap}
th{background:#eef2f6;position:relative;white-space:nowrap}
td:nth-child(-n+2),th:nth-child(-n+2){text-align:left} td:nth-child(2){white-space:nowrap}
table.sortable th{cursor:pointer} table.sortable th::after{content:' \\2195';color:#99a}
th.asc::after{content:' \\25B2'!important;color:#1f3a5f!important}
th.desc::after{content:' \\25BC'!important;color:#1f3a5f!important}
tbody tr:nth-child(even){background:#f7f9fb} tbody tr:hover{background:#fff6d6}
td.pre{font-family:ui-monospace,Menlo,Consolas,monospace;white-space:pre-wrap;text-align:left;
max-width:900px;font-size:12px;color:#8a1c1c}
caption{caption-side:bottom;text-align:left;font-size:12px;color:#555;padding-top:4px}
figure{margin:14px 0} figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:13px;color:#444;max-width:1100px}
.status-failed{color:#b00020;font-weight:600} .status-done{color:#1b6e20}
.verdict-holds{color:#1b6e20;font-weight:600} .verdict-does-not-hold{color:#b00020;font-weight:600}
.verdict-inconclusive{color:#8a6d00;font-weight:600}
#claims td{white-space:normal;max-width:420px}
"""

_JS = """
(function(){
  function key(td){
    var k = td.getAttribute('data-sort');
    if (k === null || k === '') return null;
    var n = Number(k);
    return isNaN(n) ? k.toLowerCase() : n;
  }
  function sortBy(table, col, th){
    var asc = !th.classList.contains('asc');
    table.querySelectorAll('th').forEach(function(h){h.classList.remove('asc','desc');});
    th.classList.add(asc ? 'asc' : 'desc');
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function(a, b){
      var x = key(a.cells[col]), y = key(b.cells[col]);
      if (x === null && y === null) return 0;
      if (x === null) return 1;
      if (y === null) return -1;
      var c = (typeof x === typeof y) ? (x < y ? -1 : x > y ? 1 : 0) : String(x).localeCompare(String(y));
      return asc ? c : -c;
    });
    rows.forEach(function(r){ body.appendChild(r); });
  }
  document.querySelectorAll('table.sortable').forEach(function(table){
    table.querySelectorAll('thead th').forEach(function(th, i){
      th.addEventListener('click', function(){ sortBy(table, i, th); });
    });
  });
  window.addEventListener('load', function(){
    var ok = 0, bad = 0;
    Array.prototype.forEach.call(document.images, function(img){
      var good = img.complete && img.naturalWidth > 0;
      img.setAttribute('data-loaded', good ? 'true' : 'false');
      if (good) ok++; else bad++;
    });
    var s = document.getElementById('report-status');
    s.setAttribute('data-images-total', document.images.length);
    s.setAttribute('data-images-loaded', ok);
    s.setAttribute('data-images-failed', bad);
    s.setAttribute('data-leaderboard-rows', document.querySelectorAll('#leaderboard tbody tr').length);
    s.setAttribute('data-runs-rows', document.querySelectorAll('#runs tbody tr').length);
    s.setAttribute('data-ready', '1');
  });
})();
"""


def _table_html(t: Table) -> str:
    cls = ' class="sortable"' if t.sortable else ""
    head = "".join(f"<th>{escape(c)}</th>" for c in t.columns)
    rows = []
    for row in t.rows:
        cells = []
        for i, cell in enumerate(row):
            key = "" if cell.key is None else escape(str(cell.key), quote=True)
            klass = ' class="pre"' if i in t.pre_columns else ""
            if t.columns[i] == "status":
                klass = f' class="status-{escape(cell.text)}"'
            elif t.columns[i] == "verdict":
                klass = f' class="verdict-{escape(cell.text.split(":")[0].replace(" ", "-"))}"'
            cells.append(f'<td data-sort="{key}"{klass}>{escape(cell.text)}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    text = (t.caption + " Click a column header to sort.").strip() if t.sortable else t.caption
    caption = f"<caption>{escape(text)}</caption>" if text else ""
    return (f'<div class="table-wrap"><table id="{escape(t.id)}"{cls}>{caption}<thead><tr>{head}'
            f'</tr></thead><tbody>{"".join(rows)}</tbody></table></div>')


def _img_html(path: Path, caption: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{escape(caption, quote=True)}" '
        f'data-name="{escape(Path(path).name, quote=True)}" data-loaded="pending" '
        "onload=\"this.setAttribute('data-loaded','true')\" "
        "onerror=\"this.setAttribute('data-loaded','false')\">"
        f"<figcaption>{escape(caption)}</figcaption></figure>"
    )


def write_html(path: Path, title: str, subtitle: str, sections: list[Section]) -> Path:
    """Write the self-contained report to ``path`` (atomically: a temp file, then a rename)."""
    nav = "".join(f'<a href="#{escape(s.id)}">{escape(s.title)}</a>' for s in sections)
    body = []
    for s in sections:
        parts = [f'<section id="{escape(s.id)}"><h2>{escape(s.title)}</h2>']
        if s.text:
            parts.append(f"<p>{escape(s.text)}</p>")
        parts += [_table_html(t) for t in s.tables]
        parts += [_img_html(f.path, f.caption) for f in s.figures]
        parts.append("</section>")
        body.append("".join(parts))
    doc = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>"
        f"<header><h1>{escape(title)}</h1><p>{escape(subtitle)}</p></header>"
        f"<nav>{nav}</nav><main>{''.join(body)}</main>"
        '<div id="report-status" hidden data-ready="0"></div>'
        f"<script>{_JS}</script></body></html>\n"
    )
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(doc, encoding="utf-8")
    tmp.replace(path)
    return path
