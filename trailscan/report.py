"""The HTML report: one self-contained, offline file for people who will not run SQL.

Integrity status and gaps, findings by severity with their evidence events, activity over time
and top principals/APIs/regions/errors. Charts are SVG drawn here in Python, styles and the small
script (sortable tables, a filter box) are inline: the file fetches nothing. Every value that
comes from the logs goes through `html.escape`, attributes included.
"""

from __future__ import annotations

import html
import os
import shlex
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from .lake import Lake

_SEVERITY_ORDER = ("critical", "high", "medium", "low", "info")
_SEVERITY_COLOURS = {"critical": "#7b1fa2", "high": "#c62828", "medium": "#ef6c00",
                     "low": "#f9a825", "info": "#607d8b"}
_EVIDENCE_LIMIT = 25  # evidence rows shown per finding (the finding keeps up to 100 ids)

_TOP = {
    "principals": "coalesce(userIdentity.sessionContext.sessionIssuer.arn, userIdentity.arn, "
                  "userIdentity.invokedBy, userIdentity.type)",
    "APIs": "eventSource || ':' || eventName",
    "regions": "awsRegion",
    "errors": "errorCode",
    "source IPs": "sourceIPAddress",
    "user agents": "userAgent",
}


def e(value: Any) -> str:
    """Escape one value for HTML text or a quoted attribute."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        value = value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    return html.escape(str(value), quote=True)


def collect(lake_path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Everything the report shows, as plain Python values."""
    lake = Lake.open(lake_path)
    con = lake.connect()
    try:
        def rows(sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
            return con.execute(sql, params).fetchall() if params else con.execute(sql).fetchall()

        data: dict[str, Any] = {"lake": lake.location,
                                "generated": datetime.now(UTC).replace(microsecond=0)}
        (data["events"], data["first"], data["last"], data["accounts"], data["regions"],
         data["errors"]) = rows(
            "SELECT count(*), min(eventTime), max(eventTime), count(DISTINCT recipientAccountId),"
            " count(DISTINCT awsRegion), count(errorCode) FROM cloudtrail")[0]
        data["integrity"] = rows(
            "SELECT integrity_status, count(*), count(DISTINCT source_object) FROM cloudtrail "
            "GROUP BY 1 ORDER BY 2 DESC")
        data["problems"] = rows(
            "SELECT kind, account, region, object, detail FROM integrity_problems "
            "ORDER BY kind = 'gap', kind, account, region, object")
        data["quarantined"] = rows("SELECT count(*) FROM quarantine")[0][0]
        findings = rows(
            "SELECT severity, rule_id, title, account_id, region, principal, first_seen, "
            "last_seen, event_count, summary, event_ids FROM findings")
        findings.sort(key=lambda f: (_rank(f[0]), f[1], f[3] or "", f[5] or ""))
        # Evidence of every finding in one pass over the lake, then handed out per finding.
        wanted = {i for f in findings for i in list(f[10] or [])[:_EVIDENCE_LIMIT]}
        by_id: dict[str, list[tuple[Any, ...]]] = {}
        for row in rows(
                "SELECT eventTime, eventSource || ':' || eventName, recipientAccountId, awsRegion,"
                " coalesce(userIdentity.arn, userIdentity.invokedBy, userIdentity.type), "
                "sourceIPAddress, userAgent, errorCode, eventID FROM cloudtrail WHERE eventID IN "
                "(SELECT unnest($1::VARCHAR[])) ORDER BY eventTime, eventID",
                [sorted(wanted)]) if wanted else []:
            by_id.setdefault(row[-1], []).append(row)
        data["findings"] = []
        for finding in findings:
            ids = list(finding[10] or [])[:_EVIDENCE_LIMIT]
            evidence = sorted((r for i in dict.fromkeys(ids) for r in by_id.get(i, [])),
                              key=lambda r: (r[0], r[-1]))
            data["findings"].append((finding[:10], evidence))
        data["activity"], data["bucket"] = _activity(rows, data["first"], data["last"])
        data["top"] = {title: rows(f"SELECT {expr} AS k, count(*) AS n FROM cloudtrail WHERE "
                                   f"{expr} IS NOT NULL GROUP BY k ORDER BY n DESC, k LIMIT 10")
                       for title, expr in _TOP.items()}
    finally:
        con.close()
    return data


def _rank(severity: str) -> int:
    return _SEVERITY_ORDER.index(severity) if severity in _SEVERITY_ORDER else len(
        _SEVERITY_ORDER)


def _activity(rows: Any, first: datetime | None, last: datetime | None
              ) -> tuple[list[tuple[Any, ...]], str]:
    """Events and errors per hour (per day beyond two weeks), empty buckets included."""
    if first is None or last is None:
        return [], "hour"
    bucket = "hour" if last - first <= timedelta(days=14) else "day"
    counts = {t: (n, err) for t, n, err in rows(
        f"SELECT date_trunc('{bucket}', eventTime) AS t, count(*), count(errorCode) "
        "FROM cloudtrail GROUP BY t ORDER BY t")}
    step = timedelta(hours=1) if bucket == "hour" else timedelta(days=1)
    start = min(counts)
    out = []
    for i in range(int((max(counts) - start) / step) + 1):
        t = start + i * step
        out.append((t, *counts.get(t, (0, 0))))
    return out, bucket


# --- rendering -------------------------------------------------------------------------------


def _table(headers: list[str], body: list[tuple[Any, ...]], cls: str = "") -> str:
    head = "".join(f"<th>{e(h)}</th>" for h in headers)
    rows = "".join("<tr>" + "".join(f"<td>{e(v)}</td>" for v in row) + "</tr>" for row in body)
    return (f'<table class="sortable {cls}"><thead><tr>{head}</tr></thead>'
            f"<tbody>{rows}</tbody></table>")


def _column_chart(series: list[tuple[Any, ...]], bucket: str) -> str:
    """Events (and errors, in red) per time bucket as an SVG column chart."""
    width, height, pad = 960, 220, 40
    top = max((n for _, n, _ in series), default=0) or 1
    bar = (width - pad * 2) / max(len(series), 1)
    parts = [f'<svg class="chart" role="img" aria-label="events per {e(bucket)}" '
             f'viewBox="0 0 {width} {height + 40}" width="100%">',
             f'<line x1="{pad}" y1="{height}" x2="{width - pad}" y2="{height}" class="axis"/>',
             f'<text x="{pad - 4}" y="{pad - 10}" class="label" text-anchor="end">{top}</text>']
    for i, (t, n, errors) in enumerate(series):
        x = pad + i * bar
        h = (height - pad) * n / top
        he = (height - pad) * errors / top
        tip = f"{e(t)}: {n} events, {errors} errors"
        parts.append(f'<rect class="bar" x="{x:.1f}" y="{height - h:.1f}" '
                     f'width="{max(bar - 1, 1):.1f}" height="{h:.1f}"><title>{tip}</title></rect>')
        if errors:
            parts.append(f'<rect class="bar-error" x="{x:.1f}" y="{height - he:.1f}" '
                         f'width="{max(bar - 1, 1):.1f}" height="{he:.1f}">'
                         f"<title>{tip}</title></rect>")
    for i, anchor in ((0, "start"), (len(series) // 2, "middle"), (len(series) - 1, "end")):
        if 0 <= i < len(series):
            x = pad + i * bar + (bar if anchor == "end" else 0)
            parts.append(f'<text x="{x:.1f}" y="{height + 16}" class="label" '
                         f'text-anchor="{anchor}">{e(series[i][0])}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _bar_chart(items: list[tuple[Any, int]]) -> str:
    """A horizontal SVG bar chart of (label, count)."""
    width, row = 460, 22
    top = max((n for _, n in items), default=0) or 1
    parts = [f'<svg class="chart bars" viewBox="0 0 {width} {row * len(items) + 4}" '
             f'width="{width}" role="img">']
    for i, (label, n) in enumerate(items):
        w = (width - 280) * n / top
        text = str(label)
        short = text if len(text) <= 34 else text[:16] + "…" + text[-16:]
        parts.append(f'<text x="0" y="{i * row + 15}" class="label">{e(short)}</text>'
                     f'<rect class="bar" x="220" y="{i * row + 3}" width="{max(w, 1):.1f}" '
                     f'height="{row - 6}"><title>{e(text)}: {n}</title></rect>'
                     f'<text x="{224 + w:.1f}" y="{i * row + 15}" class="label">{n}</text>')
    parts.append("</svg>")
    return "".join(parts)


def render(data: dict[str, Any]) -> str:
    """The whole document as one string."""
    by_severity = {s: 0 for s in _SEVERITY_ORDER}
    for (severity, *_), _evidence in data["findings"]:
        by_severity[severity] = by_severity.get(severity, 0) + 1
    gaps = [p for p in data["problems"] if p[0] == "gap"]
    unchecked = sum(n for s, n, _ in data["integrity"] if s != "verified")
    if data["problems"]:
        status, state = f"{len(data['problems'])} problems, {len(gaps)} gaps", "bad"
    elif unchecked:
        status, state = f"no problems; {unchecked} events not verified", "partial"
    else:
        status, state = "all events verified", "ok"
    out = [_HEAD, '<header><h1>CloudTrail audit report</h1>',
           f'<p class="meta">Lake <code>{e(data["lake"])}</code> &middot; generated '
           f'{e(data["generated"])} by trailscan</p></header><main>']
    out.append('<section id="overview"><h2>Overview</h2><div class="cards">')
    for label, value in (("events", data["events"]), ("first event", data["first"]),
                         ("last event", data["last"]), ("accounts", data["accounts"]),
                         ("regions", data["regions"]), ("errors", data["errors"]),
                         ("quarantined", data["quarantined"]),
                         ("findings", len(data["findings"]))):
        out.append(f'<div class="card"><div class="v">{e(value)}</div>'
                   f'<div class="k">{e(label)}</div></div>')
    out.append("</div></section>")

    out.append(f'<section id="integrity"><h2>Integrity <span class="badge {state}">'
               f"{e(status)}</span></h2>")
    out.append(_table(["status", "events", "log files"], data["integrity"]))
    if data["problems"]:
        out.append("<h3>Problems and gaps</h3>")
        out.append(_table(["kind", "account", "region", "object", "detail"], data["problems"],
                          "problems"))
    else:
        out.append('<p class="none">No integrity problems recorded (events never validated '
                   'are counted as <code>unchecked</code> above).</p>')
    out.append("</section>")

    out.append(f'<section id="activity"><h2>Activity per {e(data["bucket"])}</h2>')
    out.append(_column_chart(data["activity"], data["bucket"]) if data["activity"] else
               '<p class="none">No events.</p>')
    out.append('<p class="legend"><span class="sw bar"></span> events '
               '<span class="sw bar-error"></span> errors</p></section>')

    out.append('<section id="top"><h2>Top</h2><div class="grid">')
    for title, items in data["top"].items():
        out.append(f'<div class="panel"><h3>Top {e(title)}</h3>')
        out.append(_bar_chart(items) if items else '<p class="none">none</p>')
        out.append(_table([title, "events"], items))
        out.append("</div>")
    out.append("</div></section>")
    out.append('<section id="findings"><h2>Findings by severity</h2><div class="cards">')
    for severity, n in by_severity.items():
        out.append(f'<div class="card sev-{e(severity)}"><div class="v">{n}</div>'
                   f'<div class="k">{e(severity)}</div></div>')
    out.append('</div><input id="filter" type="search" placeholder="Filter findings…">')
    if not data["findings"]:
        out.append('<p class="none">No findings stored (run <code>trailscan detect</code>).</p>')
    for (severity, rule, title, account, region, principal, first, last, count, summary), \
            evidence in data["findings"]:
        out.append(
            f'<details class="finding sev-{e(severity)}" {"open" if _rank(severity) <= 1 else ""}>'
            f'<summary><span class="badge sev-{e(severity)}">{e(severity)}</span> '
            f"<b>{e(title)}</b> <code>{e(rule)}</code> &middot; {e(account)} {e(region)} "
            f"&middot; {e(count)} events</summary><p>{e(summary)}</p>"
            f'<p class="meta">principal <code>{e(principal)}</code> &middot; {e(first)} .. '
            f"{e(last)}")
        if principal and principal.startswith("arn:"):
            out.append(f' &middot; next: <code class="cmd">trailscan investigate --principal '
                       f"{e(shlex.quote(principal))}</code>")
        out.append("</p>")
        out.append(_table(["time", "API", "account", "region", "principal", "source IP",
                           "user agent", "error", "event id"], evidence, "evidence"))
        if count > len(evidence):
            out.append(f'<p class="meta">{len(evidence)} of {e(count)} events shown.</p>')
        out.append("</details>")
    out.append("</section>")

    out.append("</main>")
    out.append(_SCRIPT)
    out.append("</body></html>\n")
    return "".join(out)


def build_report(lake_path: str | os.PathLike[str] | None, output: str | os.PathLike[str]
                 ) -> Path:
    """Collect, render and write the report (temp file + rename); returns its path."""
    target = Path(output)
    text = render(collect(lake_path))
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(target)
    return target


_HEAD = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy"
 content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>trailscan report</title>
<style>
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;
  color:#1b1f24;background:#f6f7f9}
header{background:#17212b;color:#fff;padding:18px 28px}
header h1{margin:0;font-size:22px}
.meta{color:#667;font-size:12px}
header .meta{color:#b8c2cc}
main{padding:8px 28px 40px}
section{background:#fff;border:1px solid #e1e4e8;border-radius:8px;padding:14px 18px;margin:16px 0}
h2{font-size:18px;margin:4px 0 12px}
h3{font-size:14px;margin:10px 0 6px}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin-bottom:10px}
.card{border:1px solid #e1e4e8;border-radius:6px;padding:8px 14px;min-width:90px;background:#fafbfc}
.card .v{font-size:18px;font-weight:600}
.card .k{color:#667;font-size:12px}
table{border-collapse:collapse;margin:6px 0 10px;font-size:12px;max-width:100%}
th,td{border:1px solid #e1e4e8;padding:3px 7px;text-align:left;vertical-align:top;
  overflow-wrap:anywhere}
th{background:#f0f2f5;cursor:pointer;user-select:none}
th.asc:after{content:" \\25B2"}
th.desc:after{content:" \\25BC"}
.badge{display:inline-block;border-radius:10px;padding:1px 9px;font-size:12px;color:#fff;
  background:#607d8b}
.badge.ok{background:#2e7d32}
.badge.bad{background:#c62828}
.badge.partial{background:#ef6c00}
.badge.sev-critical{background:#7b1fa2}
.badge.sev-high{background:#c62828}
.badge.sev-medium{background:#ef6c00}
.badge.sev-low{background:#f9a825;color:#222}
.badge.sev-info{background:#607d8b}
.card.sev-critical{border-left:5px solid #7b1fa2}
.card.sev-high{border-left:5px solid #c62828}
.card.sev-medium{border-left:5px solid #ef6c00}
.card.sev-low{border-left:5px solid #f9a825}
.card.sev-info{border-left:5px solid #607d8b}
details.finding{border-top:1px solid #eee;padding:6px 0}
details.finding summary{cursor:pointer}
.chart .bar,.sw.bar{fill:#1e88e5;background:#1e88e5}
.chart .bar-error,.sw.bar-error{fill:#e53935;background:#e53935}
.chart .axis{stroke:#999}
.chart .label{font-size:11px;fill:#445}
.sw{display:inline-block;width:10px;height:10px;margin:0 4px 0 10px}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(480px,1fr));gap:14px}
.none{color:#667;font-style:italic}
#filter{margin:4px 0 8px;padding:4px 8px;width:320px}
code{background:#f0f2f5;padding:0 3px;border-radius:3px;word-break:break-all}
</style></head><body data-ready="0">
"""

_SCRIPT = """<script>
(function () {
  function cellValue(row, i) {
    var text = row.cells[i] ? row.cells[i].textContent : "";
    var num = parseFloat(text);
    return (text !== "" && isFinite(text)) ? num : text.toLowerCase();
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    table.querySelectorAll("th").forEach(function (th, i) {
      th.addEventListener("click", function () {
        var asc = !th.classList.contains("asc");
        table.querySelectorAll("th").forEach(function (h) { h.classList.remove("asc", "desc"); });
        th.classList.add(asc ? "asc" : "desc");
        var body = table.tBodies[0];
        Array.prototype.slice.call(body.rows).sort(function (a, b) {
          var x = cellValue(a, i), y = cellValue(b, i);
          return (x < y ? -1 : x > y ? 1 : 0) * (asc ? 1 : -1);
        }).forEach(function (r) { body.appendChild(r); });
      });
    });
  });
  var filter = document.getElementById("filter");
  if (filter) {
    filter.addEventListener("input", function () {
      var q = filter.value.toLowerCase();
      document.querySelectorAll("details.finding").forEach(function (d) {
        d.style.display = d.textContent.toLowerCase().indexOf(q) >= 0 ? "" : "none";
      });
    });
  }
  var drawn = 0;
  document.querySelectorAll("svg.chart").forEach(function (svg) {
    var box = svg.getBoundingClientRect();
    if (box.width > 0 && box.height > 0 && svg.querySelectorAll("rect").length > 0) { drawn++; }
  });
  document.body.setAttribute("data-charts-drawn", String(drawn));
  document.body.setAttribute("data-tables", String(document.querySelectorAll("table").length));
  document.body.setAttribute("data-ready", "1");
})();
</script>
"""
