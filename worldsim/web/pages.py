"""HTML of the pages, built server-side from plain strings (every value escaped); the interactive parts (the episode
player, play, generate) are `static/app.js`, served by the app itself: no CDN, nothing fetched from the internet."""

from __future__ import annotations

import json
import re
from html import escape
from typing import Any
from urllib.parse import quote

NAV = (("/", "Datasets"), ("/models", "Models"), ("/play", "Play"), ("/generate", "Generate"))


def e(x: Any) -> str:
    return escape(str(x), quote=True)


def url(*parts: str, **query: Any) -> str:
    path = "/".join(quote(str(p), safe="/") for p in parts)
    q = "&".join(f"{quote(k)}={quote(str(v))}" for k, v in query.items() if v is not None)
    return path + (f"?{q}" if q else "")


def layout(title: str, body: str, active: str = "/", scripts: bool = False) -> str:
    nav = "".join(f'<a href="{href}"{" class=on" if href == active else ""}>{e(name)}</a>' for href, name in NAV)
    js = '<script src="/static/app.js"></script>' if scripts else ""
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{e(title)} - worldsim</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<link rel="stylesheet" href="/static/style.css"></head><body><header><b>worldsim</b>{nav}</header>'
            f'<main><h1>{e(title)}</h1>{body}</main>{js}</body></html>')


def error_box(message: str) -> str:
    return f'<div class="error" id="error">{e(message)}</div>'


def table(headers: list[str], rows: list[list[Any]], raw: set[int] | None = None, cls: str = "") -> str:
    """A table; cells in columns `raw` are inserted as HTML (already escaped by the caller), the rest escaped."""
    raw = raw or set()
    head = "".join(f"<th>{e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c if i in raw else e(_fmt(c))}</td>" for i, c in enumerate(r)) + "</tr>"
                   for r in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def kv(pairs: list[tuple[str, Any]], raw: set[str] | None = None) -> str:
    raw = raw or set()
    rows = "".join(f"<tr><th>{e(k)}</th><td>{v if k in raw else e(_fmt(v))}</td></tr>" for k, v in pairs)
    return f'<table class="kv">{rows}</table>'


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, dict | list):
        return json.dumps(v)
    return "" if v is None else str(v)


def pre_json(data: Any) -> str:
    return f"<pre>{e(json.dumps(data, indent=1, sort_keys=True, default=str))}</pre>"


def data_script(name: str, data: Any) -> str:
    """JSON for the page's script; `</` is escaped so no value can close the script element."""
    text = json.dumps(data, default=str).replace("</", "<\\/")
    return f'<script type="application/json" id="{e(name)}">{text}</script>'


def svg_chart(title: str, points: list[tuple[float, float]], width: int = 420, height: int = 180,
              log: bool = False) -> str:
    """A line chart of (x, y) points as inline SVG, with the y range and the last value labelled."""
    import math

    pts = [(x, math.log10(y) if log else y) for x, y in points if not log or y > 0]
    if len(pts) < 2:
        return ""
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    y1 = y1 if y1 > y0 else y0 + 1
    x1 = x1 if x1 > x0 else x0 + 1
    pad = 34
    path = " ".join(f"{pad + (x - x0) / (x1 - x0) * (width - pad - 6):.1f},"
                    f"{6 + (1 - (y - y0) / (y1 - y0)) * (height - 26):.1f}" for x, y in pts)
    lab = (lambda v: f"{10 ** v:.3g}") if log else (lambda v: f"{v:.3g}")
    last = points[-1][1]
    return (f'<figure class="chart"><figcaption>{e(title)}{" (log)" if log else ""}: last {last:.4g} at step '
            f'{points[-1][0]:.0f}</figcaption><svg viewBox="0 0 {width} {height}" width="{width}" height="{height}">'
            f'<line x1="{pad}" y1="{height - 20}" x2="{width - 6}" y2="{height - 20}" class="axis"/>'
            f'<line x1="{pad}" y1="6" x2="{pad}" y2="{height - 20}" class="axis"/>'
            f'<text x="2" y="14">{e(lab(y1))}</text><text x="2" y="{height - 22}">{e(lab(y0))}</text>'
            f'<text x="{pad}" y="{height - 4}">{x0:.0f}</text>'
            f'<text x="{width - 6}" y="{height - 4}" text-anchor="end">{x1:.0f}</text>'
            f'<polyline points="{path}" class="line"/></svg></figure>')


_INLINE_CODE = re.compile(r"`([^`]+)`")
_BOLD = re.compile(r"\*\*([^*]+)\*\*")
_BULLET = re.compile(r"^\s*[-*]\s+")
_IMAGE = re.compile(r"!\[([^\]]*)\]\(([^)\s]+)\)")


def _inline(text: str, image_url: Any) -> str:
    out = e(text)
    out = _IMAGE.sub(lambda m: (f'<img alt="{m.group(1)}" src="{e(image_url(m.group(2)))}">'
                                if image_url(m.group(2)) else m.group(1)), out)
    out = _INLINE_CODE.sub(r"<code>\1</code>", out)
    return _BOLD.sub(r"<b>\1</b>", out)


def markdown(text: str, image_url: Any = lambda src: None) -> str:
    """The subset of Markdown our reports use (headings, tables, lists, code blocks, paragraphs, inline code, bold,
    images that `image_url` maps to a served URL); everything escaped."""
    out: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            j = i + 1
            while j < len(lines) and not lines[j].startswith("```"):
                j += 1
            out.append(f"<pre>{e(chr(10).join(lines[i + 1:j]))}</pre>")
            i = j + 1
            continue
        if line.lstrip().startswith("|"):
            rows = []
            while i < len(lines) and lines[i].lstrip().startswith("|"):
                cells = [c.strip() for c in lines[i].strip().strip("|").split("|")]
                if not all(re.fullmatch(r":?-{2,}:?", c) for c in cells if c):
                    rows.append(cells)
                i += 1
            if rows:
                head = "".join(f"<th>{_inline(c, image_url)}</th>" for c in rows[0])
                body = "".join("<tr>" + "".join(f"<td>{_inline(c, image_url)}</td>" for c in r) + "</tr>"
                               for r in rows[1:])
                out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
            continue
        m = re.match(r"(#{1,6})\s+(.*)", line)
        if m:
            level = min(6, len(m.group(1)) + 1)
            out.append(f"<h{level}>{_inline(m.group(2), image_url)}</h{level}>")
        elif re.match(r"\s*[-*]\s+", line):
            items = []
            while i < len(lines) and re.match(r"\s*[-*]\s+", lines[i]):
                item = _inline(_BULLET.sub("", lines[i]), image_url)
                items.append(f"<li>{item}</li>")
                i += 1
            out.append(f"<ul>{''.join(items)}</ul>")
            continue
        elif line.strip():
            out.append(f"<p>{_inline(line, image_url)}</p>")
        i += 1
    return "\n".join(out)
