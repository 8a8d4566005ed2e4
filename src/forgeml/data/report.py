"""Dataset reports: one HTML file that a person reads anywhere, or the same facts as JSON.

The HTML is a single self-contained document: styles inline, charts as inline SVG, no
script, no fonts or images to fetch, and a Content-Security-Policy that forbids loading
anything, so a report opens offline, survives being mailed or archived, and prints.
Everything shown comes from a stored profile and a validation result: a report of a
billion-row dataset costs no more than one of a hundred rows, and needs no data access.
Every value from the data is escaped, since column names and categories are untrusted.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from forgeml.data import svg
from forgeml.data.svg import Bar, esc, number, percent
from forgeml.errors import InvalidArgumentError

if TYPE_CHECKING:
    from forgeml.data.dataset import Dataset
    from forgeml.data.suite import Suite, ValidationResult

TOP_SHOWN = 12
QUANTILE_NAMES = {"0.01": "p1", "0.05": "p5", "0.25": "p25", "0.5": "median", "0.75": "p75"}
QUANTILE_NAMES |= {"0.95": "p95", "0.99": "p99"}
COLORS = {"numeric": "#3d6fd6", "datetime": "#0f8f86", "categorical": "#7a5bc7"}
COLORS |= {"text": "#b7791f", "identifier": "#64748b"}
MISSING = "#e0703a"
_TONES = {"failed": "bad", "passed": "ok"}
_EXTRAS = (("zeros", "zeros"), ("non_finite", "NaN / ∞"))
_LONG_DECIMAL = re.compile(r"-?\d+\.\d{5,}")
_CODE_KEYS = {"digest", "uri", "files", "url", "query", "path"}


def render_json(
    profile: Mapping[str, Any],
    *,
    title: str,
    columns: Sequence[Mapping[str, Any]] | None = None,
    validation: ValidationResult | Mapping[str, Any] | None = None,
    source: Mapping[str, Any] | None = None,
    meta: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The report's content as plain JSON; column semantics are inferred when not given."""
    if validation is not None and not isinstance(validation, Mapping):
        validation = validation.to_dict()
    return {
        "title": title,
        "profile": dict(profile),
        "columns": _describe(profile, columns),
        "validation": None if validation is None else dict(validation),
        "source": None if source is None else dict(source),
        "meta": None if meta is None else dict(meta),
    }


def render_html(
    profile: Mapping[str, Any],
    *,
    title: str,
    columns: Sequence[Mapping[str, Any]] | None = None,
    validation: ValidationResult | Mapping[str, Any] | None = None,
    source: Mapping[str, Any] | None = None,
    meta: Mapping[str, Any] | None = None,
) -> str:
    """A self-contained HTML document: header, validation, missing values, columns, checks."""
    report = render_json(
        profile, title=title, columns=columns, validation=validation, source=source, meta=meta
    )
    stats: dict[str, dict[str, Any]] = report["profile"].get("columns", {})
    rows = int(report["profile"].get("row_count") or 0)
    result: dict[str, Any] | None = report["validation"]
    checks: list[dict[str, Any]] = list(result.get("results", [])) if result else []
    anchors = {name: f"col-{index}" for index, name in enumerate(stats)}
    described = {c["name"]: c for c in report["columns"]}
    body = [
        _header(report, stats, rows),
        _verdict(result, checks) if result is not None else "",
        _missing(stats, anchors),
        '<section id="columns"><h2>Columns</h2><div class="cards">'
        + "".join(
            _card(name, column, described.get(name, {}), checks, anchors[name])
            for name, column in stats.items()
        )
        + "</div></section>",
        _checks(checks, anchors) if result is not None else "",
        f"<footer>forgeml data report · profile format {esc(report['profile'].get('format', '?'))}"
        "</footer>",
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta http-equiv="Content-Security-Policy" '
        "content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">"
        '<link rel="icon" href="data:,">'
        f"<title>{esc(title)} · data report</title><style>{_STYLE}</style></head>"
        f"<body><main>{''.join(body)}</main></body></html>\n"
    )


def write_report(
    dataset_or_profile: Dataset | Mapping[str, Any],
    path: str | os.PathLike[str],
    *,
    suite: Suite | None = None,
    validation: ValidationResult | Mapping[str, Any] | None = None,
    reference: Any = None,
) -> Path:
    """Write HTML (``.html``) or JSON (``.json``) atomically: readers never see half a file.

    Given a dataset, its profile, columns, source and identity fill the report, and
    ``suite`` (when no ``validation`` is given) is run on it without being recorded,
    since writing a report should not change what the store says about the data.
    """
    target = Path(path)
    suffix = target.suffix.lower()
    if suffix not in (".html", ".json"):
        raise InvalidArgumentError(f"{target}: a report is written as .html or .json")
    if isinstance(dataset_or_profile, Mapping):
        if suite is not None and validation is None:
            raise InvalidArgumentError(
                "a suite needs data to run on: pass the Dataset, or a validation= result"
            )
        inputs: dict[str, Any] = {"profile": dataset_or_profile, "title": target.stem}
    else:
        dataset = dataset_or_profile
        if suite is not None and validation is None:
            validation = dataset.validate(suite, reference=reference, record=False)
        created = datetime.fromtimestamp(dataset.record.created_at, tz=UTC)
        inputs = {
            "profile": dataset.profile,
            "title": dataset.name,
            "columns": dataset.columns,
            "source": dataset.source,
            "meta": {
                "version": dataset.version,
                "uri": dataset.uri,
                "digest": dataset.digest,
                "bytes": dataset.record.size,
                "created": created.isoformat(timespec="seconds"),
                "created_by": dataset.record.created_by,
            },
        }
    if suffix == ".html":
        data = render_html(**inputs, validation=validation).encode()
    else:
        report = render_json(**inputs, validation=validation)
        data = orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY)
    _write_atomic(target, data)
    return target


def _write_atomic(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=".partial", dir=target.parent
    )
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp_name, 0o644)
        os.replace(temp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise


def _describe(
    profile: Mapping[str, Any], columns: Sequence[Mapping[str, Any]] | None
) -> list[dict[str, Any]]:
    """Columns as a dataset describes them; a bare profile gets the same classification."""
    if columns is not None:
        return [dict(column) for column in columns]
    import pyarrow as pa

    from forgeml.data.schema import semantic_type

    return [
        {
            "name": name,
            "type": stats.get("type"),
            "semantic": semantic_type(name, pa.null(), stats),
            "nullable": bool(stats.get("nulls")),
        }
        for name, stats in profile.get("columns", {}).items()
    ]


# -- sections ------------------------------------------------------------------------------


def _header(report: dict[str, Any], stats: dict[str, dict[str, Any]], rows: int) -> str:
    cells = rows * len(stats)
    nulls = sum(int(s.get("nulls") or 0) for s in stats.values())
    facts = [(number(rows), "rows", ""), (number(len(stats)), "columns", "")]
    facts.append((percent(nulls / cells) if cells else "\u2013", "missing cells", ""))
    if report["validation"] is not None:
        word = _verdict_word(report["validation"])
        facts.append((word, "validation", _TONES.get(word, "warn")))
    entries = list((report["meta"] or {}).items())
    entries += [("source" if k == "kind" else k, v) for k, v in (report["source"] or {}).items()]
    meta = "".join(
        f"<div><dt>{esc(str(key).replace('_', ' '))}</dt><dd>{_meta_value(key, value)}</dd></div>"
        for key, value in entries
        if value not in (None, "", [], {})
    )
    return (
        f'<header class="top"><p class="eyebrow">Data report</p><h1>{esc(report["title"])}</h1>'
        '<div class="facts">'
        + "".join(
            f'<div class="fact {tone}"><b>{esc(value)}</b><span>{esc(label)}</span></div>'
            for value, label, tone in facts
        )
        + "</div>"
        + (f'<dl class="meta">{meta}</dl>' if meta else "")
        + "</header>"
    )


def _meta_value(key: str, value: Any) -> str:
    if isinstance(value, list):
        shown = ", ".join(str(v) for v in value[:5])
        text = shown + (f" (+{len(value) - 5} more)" if len(value) > 5 else "")
    else:
        text = number(value) if isinstance(value, int | float) else str(value)
    return f"<code>{esc(text)}</code>" if key in _CODE_KEYS else esc(text)


def _verdict_word(result: Mapping[str, Any]) -> str:
    if not result.get("success", False):
        return "failed"
    return "passed with warnings" if result.get("warnings") else "passed"


def _verdict(result: dict[str, Any], checks: list[dict[str, Any]]) -> str:
    word = _verdict_word(result)
    tone = _TONES.get(word, "warn")
    errors, warnings = int(result.get("errors") or 0), int(result.get("warnings") or 0)
    parts = [
        f"{number(len(checks))} checks on {number(int(result.get('row_count') or 0))} rows",
        f"{number(sum(1 for c in checks if c.get('passed')))} passed",
        f"{number(errors)} error{'s' if errors != 1 else ''}",
        f"{number(warnings)} warning{'s' if warnings != 1 else ''}",
    ]
    if result.get("seconds") is not None:
        parts.append(f"{float(result['seconds']):.2f} s")
    mark = {"ok": "\u2713", "warn": "!", "bad": "\u2715"}[tone]
    return (
        f'<section id="validation" class="verdict {tone}"><div class="mark" aria-hidden="true">'
        f"{mark}</div><div><h2>Validation {esc(word)}</h2><p>Suite "
        f"<b>{esc(result.get('suite', '?'))}</b>: {esc(' · '.join(parts))}</p></div>"
        '<a class="jump" href="#checks">See the checks</a></section>'
    )


def _missing(stats: dict[str, dict[str, Any]], anchors: dict[str, str]) -> str:
    bars = []
    for name, column in stats.items():
        fraction = float(column.get("null_fraction") or 0.0)
        text = f"{percent(fraction)} · {number(int(column.get('nulls') or 0))}"
        bars.append(Bar(name, fraction, text, href="#" + anchors[name]))
    holes = sum(1 for bar in bars if bar.value > 0)
    note = f"{holes} of {len(bars)} columns have missing values." if holes else ""
    note = note or "No column has missing values."
    chart = svg.hbars(
        bars, title=f"Missing values per column: {note}", color=MISSING, scale=1.0, width=760
    )
    return (
        '<section id="missing"><h2>Missing values</h2>'
        f'<p class="note">Share of rows with no value, per column. {esc(note)}</p>'
        f'<div class="panel wide">{chart}</div></section>'
    )


def _card(
    name: str,
    stats: dict[str, Any],
    described: dict[str, Any],
    checks: list[dict[str, Any]],
    anchor: str,
) -> str:
    kind, duckdb_type = str(stats.get("kind", "other")), str(stats.get("type", "?"))
    semantic = str(described.get("semantic", kind))
    color = COLORS.get(semantic, COLORS["numeric"])
    fraction, nulls = float(stats.get("null_fraction") or 0.0), int(stats.get("nulls") or 0)
    distinct = ("≈" if stats.get("distinct_approximate") else "") + number(stats.get("distinct"))
    items = [
        ("values", number(int(stats.get("count") or 0)), ""),
        ("missing", f"{number(nulls)} · {percent(fraction)}" if nulls else "0", ""),
        ("distinct", distinct, ""),
        *_kind_stats(kind, duckdb_type, stats),
    ]
    notes = "".join(
        f'<li class="{"bad" if check.get("severity") == "error" else "warn"}">'
        f'<a href="#check-{index}">{esc(check.get("name", "?"))}</a>: '
        f"{esc(check.get('message') or _compact(check.get('observed')))}</li>"
        for index, check in enumerate(checks)
        if check.get("column") == name and not check.get("passed")
    )
    arrow = described.get("type")
    arrow_title = f' title="Arrow type {esc(arrow)}"' if arrow else ""
    chart = svg.column_chart(name, stats, color, top=TOP_SHOWN)
    return (
        f'<article class="card" id="{anchor}"><header><h3>{esc(name)}</h3>'
        f'<span class="badge" style="background:{color}">{esc(semantic)}</span>'
        f'<span class="type"{arrow_title}>'
        f'{esc(duckdb_type)}</span></header><dl class="stats">'
        + "".join(
            f'<div class="{css}"><dt>{esc(k)}</dt><dd>{esc(v)}</dd></div>' for k, v, css in items
        )
        + "</dl>"
        + (chart or f'<p class="empty">{_no_chart(stats)}</p>')
        + _quantiles(stats, svg.formatter(kind, duckdb_type, stats))
        + (f'<ul class="failed">{notes}</ul>' if notes else "")
        + "</article>"
    )


def _no_chart(stats: Mapping[str, Any]) -> str:
    top = stats.get("top") or []
    if top and int(top[0]["count"]) <= 1:
        return "Every value occurs once: nothing to chart."
    return "No distribution to draw for this column."


def _kind_stats(
    kind: str, duckdb_type: str, stats: Mapping[str, Any]
) -> list[tuple[str, str, str]]:
    """A fourth figure for the first row, then the kind's own row (``new`` starts it)."""
    count = int(stats.get("count") or 0)
    if kind in ("integer", "float"):
        extra = [(label, number(int(stats[f])), "") for f, label in _EXTRAS if stats.get(f)][:1]
        fields = [(f, number(stats.get(f)), "") for f in ("min", "max", "mean", "std")]
        return [*extra, (fields[0][0], fields[0][1], "new"), *fields[1:]]
    if kind == "temporal":
        zone = " UTC" if "TIME ZONE" in duckdb_type.upper() else ""
        return [
            ("earliest", svg.moment(stats.get("min"), duckdb_type) + zone, "new wide"),
            ("latest", svg.moment(stats.get("max"), duckdb_type) + zone, "wide"),
            ("mean", svg.moment(stats.get("mean"), duckdb_type) + zone, "wide"),
            ("spread (std)", svg.duration(stats.get("std")), "wide"),
        ]
    if kind == "string":
        low, high = number(stats.get("min_length")), number(stats.get("max_length"))
        empty = [("empty", number(int(stats["empty"])), "")] if stats.get("empty") else []
        return [
            *empty,
            ("length", low if low == high else f"{low} \u2013 {high}", "new"),
            ("mean length", number(stats.get("mean_length")), ""),
        ]
    if kind == "boolean" and count:
        true = int(stats.get("true") or 0)
        return [("true", f"{number(true)} · {percent(true / count)}", "")]
    return []


def _quantiles(stats: Mapping[str, Any], label: Callable[[float], str]) -> str:
    cells = "".join(
        f"<div><dt>{esc(QUANTILE_NAMES.get(q, q))}</dt><dd>{esc(label(float(v)))}</dd></div>"
        for q, v in (stats.get("quantiles") or {}).items()
    )
    return f'<dl class="quantiles" aria-label="Quantiles">{cells}</dl>' if cells else ""


def _checks(checks: list[dict[str, Any]], anchors: dict[str, str]) -> str:
    """Failed errors first, then failed warnings, then what passed: problems lead."""
    order = sorted(
        range(len(checks)),
        key=lambda i: (bool(checks[i].get("passed")), checks[i].get("severity") != "error"),
    )
    rows = "".join(_check_row(index, checks[index], anchors) for index in order)
    return (
        '<section id="checks"><h2>Checks</h2><div class="panel table-wrap"><table class="checks">'
        "<thead><tr><th>Result</th><th>Check</th><th>Severity</th><th>Observed</th>"
        f"<th>Expected</th></tr></thead><tbody>{rows}</tbody></table></div></section>"
    )


def _check_row(index: int, check: dict[str, Any], anchors: dict[str, str]) -> str:
    passed, severity = bool(check.get("passed")), str(check.get("severity", "error"))
    tone = "ok" if passed else "bad" if severity == "error" else "warn"
    column, message = check.get("column"), check.get("message")
    name = esc(check.get("name", "?"))
    if column in anchors:
        name = f'<a href="#{anchors[column]}" title="column {esc(column)}">{name}</a>'
    row = (
        f'<tr class="check {tone}" id="check-{index}">'
        f'<td><span class="pill {tone}">{"passed" if passed else "failed"}</span></td>'
        f'<td class="name">{name}'
        + (f'<div class="message">{esc(message)}</div>' if message and not passed else "")
        + f'</td><td class="sev">{esc(severity)}</td>'
        f"<td>{esc(_compact(check.get('observed')))}</td><td>{esc(check.get('expected', ''))}</td>"
        "</tr>"
    )
    samples = check.get("failing_rows") or []
    if passed or not samples:
        return row
    keys = list(dict.fromkeys(key for sample in samples for key in sample))
    head = "".join(f"<th{_mark(k, column)}>{esc(k)}</th>" for k in keys)
    body = "".join(
        "<tr>" + "".join(f"<td{_mark(k, column)}>{_cell(s.get(k))}</td>" for k in keys) + "</tr>"
        for s in samples
    )
    return (
        f'{row}<tr class="samples"><td colspan="5"><details><summary>Sample of failing rows '
        f'({number(len(samples))})</summary><div class="table-wrap"><table class="rows">'
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div></details></td></tr>"
    )


def _mark(key: str, column: Any) -> str:
    return ' class="hl"' if key == column else ""


def _cell(value: Any) -> str:
    if value is None:
        return '<span class="null">null</span>'
    if isinstance(value, bool):
        return str(value).lower()
    text = number(value) if isinstance(value, float) else str(value)
    if len(text) <= 48:
        return esc(text)
    return f'<span title="{esc(text)}">{esc(text[:47])}…</span>'


def _compact(value: Any, depth: int = 0) -> str:
    """An observed value on one short line: numbers for people, long lists cut."""
    if value is None:
        return "\u2013"
    if isinstance(value, bool | int | float):
        return number(value)
    if isinstance(value, Mapping):
        text = ", ".join(
            f"{str(k).replace('_', ' ')} {_compact(v, depth + 1)}" for k, v in value.items()
        )
    elif isinstance(value, list | tuple):
        shown = ", ".join(_compact(v, depth + 1) for v in value[:5])
        text = f"[{shown}{f', +{len(value) - 5}' if len(value) > 5 else ''}]" if value else "none"
    elif isinstance(value, str) and _LONG_DECIMAL.fullmatch(value):
        text = number(float(value))
    else:
        text = str(value)
    limit = 160 if depth == 0 else 60
    return text if len(text) <= limit else text[: limit - 1] + "…"


_STYLE = """
:root{--ink:#1e293b;--muted:#64748b;--line:#e2e8f0;--bg:#f4f6f9;--ok:#15803d;--bad:#c0262d;
--warn:#b45309;--accent:#3d6fd6}*{box-sizing:border-box}html{-webkit-print-color-adjust:exact;
print-color-adjust:exact}body{margin:0;background:var(--bg);color:var(--ink);
font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;
font-variant-numeric:tabular-nums}main{max-width:1280px;margin:0 auto;padding:28px 32px 40px}
h1{font-size:28px;line-height:1.2;margin:0 0 16px;word-break:break-word}h2{font-size:18px;
margin:0 0 4px}h3{font:600 15px/1.3 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;margin:0;
word-break:break-all}a{color:var(--accent);text-decoration:none}a:hover{text-decoration:underline}
code{font:12.5px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;word-break:break-all}
section{margin-top:32px}.note{color:var(--muted);margin:0 0 10px}.top{background:#fff;
border:1px solid var(--line);border-radius:12px;padding:22px 26px}.eyebrow{margin:0 0 2px;
color:var(--muted);text-transform:uppercase;letter-spacing:.08em;font-size:12px;font-weight:600}
.facts{display:flex;flex-wrap:wrap;gap:12px 40px}.fact b{display:block;font-size:22px;
line-height:1.2}.fact.ok b{color:var(--ok)}.fact.bad b{color:var(--bad)}
.fact.warn b{color:var(--warn)}.fact span{color:var(--muted);font-size:12px;
text-transform:uppercase;letter-spacing:.05em}.meta{display:flex;flex-wrap:wrap;gap:6px 28px;
margin:18px 0 0;padding-top:14px;border-top:1px solid var(--line);font-size:13px}
.meta dt{color:var(--muted);display:inline;margin-right:6px}.meta dd{display:inline;margin:0}
.verdict{display:flex;align-items:center;gap:16px;background:#fff;border:1px solid var(--line);
border-left:6px solid var(--c);border-radius:12px;padding:14px 20px}.verdict p{margin:0}
.verdict .jump{margin-left:auto;white-space:nowrap}.verdict .mark{width:36px;height:36px;
border-radius:50%;background:var(--c);color:#fff;display:flex;align-items:center;
justify-content:center;font-weight:700;font-size:18px;flex:none}.ok{--c:var(--ok)}
.bad{--c:var(--bad)}.warn{--c:var(--warn)}.verdict h2{color:var(--c)}.panel{background:#fff;
border:1px solid var(--line);border-radius:12px;padding:14px 18px}.wide svg{max-width:760px}
svg.chart{display:block;width:100%;height:auto}svg a:hover text{text-decoration:underline}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(360px,1fr));gap:16px;
margin-top:12px}.card{background:#fff;border:1px solid var(--line);border-radius:12px;
padding:14px 16px;break-inside:avoid;display:flex;flex-direction:column;gap:10px}
.card header{display:flex;align-items:center;gap:8px;flex-wrap:wrap}.badge{color:#fff;
border-radius:999px;padding:1px 9px;font-size:11.5px;font-weight:600}.type{color:var(--muted);
font:11.5px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;border:1px solid var(--line);
border-radius:6px;padding:0 6px}dl{margin:0}dd{margin:0}.stats{display:grid;
grid-template-columns:1fr 1.3fr 1fr 1fr;gap:6px 12px}.stats .new{grid-column-start:1}
.stats .wide{grid-column-end:span 2}.stats dt,.quantiles dt{color:var(--muted);font-size:11.5px}
.stats dd{font-weight:600;font-size:13.5px;overflow-wrap:anywhere}.quantiles{display:grid;
grid-template-columns:repeat(4,1fr);gap:4px 12px;border-top:1px dashed var(--line);padding-top:8px;
font-size:12.5px}.empty{color:var(--muted);font-style:italic;margin:0}ul.failed{margin:0;
padding:8px 0 0 18px;border-top:1px dashed var(--line);font-size:12.5px}
ul.failed li.bad::marker{color:var(--bad)}ul.failed li.warn::marker{color:var(--warn)}
.table-wrap{overflow-x:auto}table{border-collapse:collapse;width:100%}th{text-align:left;
font-size:12px;color:var(--muted);font-weight:600;text-transform:uppercase;letter-spacing:.04em}
th,td{padding:7px 10px;border-bottom:1px solid var(--line);vertical-align:top}
tr.check td{font-size:13.5px}tr.check.bad{background:#fef5f5}tr.check.warn{background:#fffaf0}
tr.check.ok td{padding-top:4px;padding-bottom:4px;font-size:12.5px}td.name{font-weight:600}
td.name a{color:inherit}.message{color:var(--muted);font-size:12.5px;font-weight:400}
.pill{display:inline-block;min-width:58px;text-align:center;border-radius:999px;padding:1px 8px;
font-size:12px;font-weight:600;color:#fff;background:var(--c)}.pill.ok{background:#dcfce7;
color:#166534}td.sev{color:var(--muted)}tr.bad td.sev,tr.warn td.sev{color:var(--c);
font-weight:600}tr.samples>td{padding:0 10px 10px 86px}summary{cursor:pointer;color:var(--accent);
font-size:12.5px}table.rows{margin-top:6px;font-size:12px;width:auto}
table.rows th,table.rows td{padding:3px 8px;border:1px solid var(--line);white-space:nowrap}
table.rows th{text-transform:none;letter-spacing:0;background:#f8fafc}
table.rows .hl{background:#fde8e8}.null{color:var(--muted);font-style:italic}
footer{margin-top:36px;color:var(--muted);font-size:12px;text-align:center}
@media print{body{background:#fff;font-size:12px}main{padding:0;max-width:none}
.top,.panel,.card,.verdict{border-color:#cbd5e1}.verdict{border-left-color:var(--c)}
.verdict .jump{display:none}.table-wrap{overflow:visible}
table.rows th,table.rows td{white-space:normal;overflow-wrap:anywhere}
.cards{grid-template-columns:repeat(2,1fr)}section{break-inside:auto}tr{break-inside:avoid}
details::details-content{content-visibility:visible;display:block}}
"""
