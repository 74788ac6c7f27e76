"""``lucidstream dashboard``: the panels of ``infra/dashboards`` as one HTML page.

A small threaded HTTP server (standard library) on 127.0.0.1 renders every
panel on each request: line and bar charts as inline SVG, tables as HTML, and
the page refreshes itself. Nothing is fetched from the internet, so it works
on an isolated host. ``/panel/NAME.json`` returns a panel's rows as JSON.
With the embedded store, run it inside the flow's process (``lucidstream run
--dashboard``), since one process owns a chdb path; the store handle is shared
and locked, so the page and the flow take turns.

It binds 127.0.0.1 unless told otherwise. On any other address it needs a token
(``LUCIDSTREAM_TOKEN`` or ``--token-file``) and refuses to start without one;
a request then carries it as ``Authorization: Bearer TOKEN``, or once as
``?token=TOKEN`` (a browser), which sets an HttpOnly cookie. ``/healthz`` is
open.
"""

from __future__ import annotations

import hmac
import html
import ipaddress
import json
import logging
import os
import threading
from collections.abc import Sequence
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from flows.panels import Panel, load_panels, panel
from operators.errors import ConfigError, LucidstreamError
from sinks.store import Store

__all__ = ["DashboardServer", "load_token", "render_page", "svg_chart"]

log = logging.getLogger("lucidstream.dashboard")
COLORS = ("#2f6fdf", "#e0662b", "#2a9d5c", "#c03a6b", "#8a5cd0", "#7a7a7a")
WIDTH, HEIGHT, PAD = 560, 220, 40


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number else None  # NaN is no point


def _short(value: float) -> str:
    """A compact axis label: 15k, 1.2M, 0.75.

    >>> _short(14_980), _short(1_234_567), _short(0.7592)
    ('15k', '1.2M', '0.759')
    """
    size = abs(value)
    if size >= 1e6:
        return f"{value / 1e6:.2g}M"
    if size >= 1e4:
        return f"{value / 1e3:.0f}k"
    return f"{value:.3g}"


def _label(value: Any) -> str:
    if isinstance(value, datetime):
        return value.strftime("%H:%M:%S")
    return str(value)


def svg_chart(name: str, kind: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
              ) -> str:
    """A line or bar chart of ``rows``: the first column on x, the others as series.

    >>> svg = svg_chart("demo", "line", ["t", "v"], [(1, 2.0), (2, 4.0)])
    >>> 'data-points="2"' in svg and "<polyline" in svg
    True
    """
    series = list(range(1, len(columns)))
    values = [[_number(row[i]) for i in series] for row in rows]
    points = sum(1 for vs in values for v in vs if v is not None)
    ys = [v for vs in values for v in vs if v is not None]
    top = max(max(ys, default=0.0), 0.0) or 1.0
    bottom = min(min(ys, default=0.0), 0.0)
    span = top - bottom or 1.0
    inner_w, inner_h = WIDTH - 2 * PAD, HEIGHT - 2 * PAD

    def y_of(v: float) -> float:
        return PAD + inner_h - (v - bottom) / span * inner_h

    n = max(len(rows), 1)
    parts = [f'<svg class="chart" data-panel="{html.escape(name)}" data-points="{points}" '
             f'width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" '
             'xmlns="http://www.w3.org/2000/svg" role="img">',
             f'<line x1="{PAD}" y1="{PAD + inner_h}" x2="{PAD + inner_w}" y2="{PAD + inner_h}" '
             'stroke="#999"/>',
             f'<line x1="{PAD}" y1="{PAD}" x2="{PAD}" y2="{PAD + inner_h}" stroke="#999"/>',
             f'<text x="{PAD - 4}" y="{PAD + 4}" text-anchor="end" font-size="10">'
             f'{_short(top)}</text>',
             f'<text x="{PAD - 4}" y="{PAD + inner_h}" text-anchor="end" font-size="10">'
             f'{_short(bottom)}</text>']
    if rows:
        parts.append(f'<text x="{PAD}" y="{HEIGHT - PAD + 14}" font-size="10">'
                     f'{html.escape(_label(rows[0][0]))}</text>')
        parts.append(f'<text x="{PAD + inner_w}" y="{HEIGHT - PAD + 14}" text-anchor="end" '
                     f'font-size="10">{html.escape(_label(rows[-1][0]))}</text>')
    for k, _ in enumerate(series):
        color = COLORS[k % len(COLORS)]
        if kind == "bar":
            slot = inner_w / n
            bar_w = max(slot / (len(series) + 1), 1.0)
            for i, vs in enumerate(values):
                v = vs[k]
                if v is None:
                    continue
                x = PAD + i * slot + k * bar_w
                y0, y1 = y_of(max(v, 0.0)), y_of(min(v, 0.0))
                parts.append(f'<rect x="{x:.1f}" y="{y0:.1f}" width="{bar_w:.1f}" '
                             f'height="{max(y1 - y0, 0.5):.1f}" fill="{color}"/>')
        else:
            coords = [(PAD + (i / max(n - 1, 1)) * inner_w, y_of(vs[k]))
                      for i, vs in enumerate(values) if vs[k] is not None]
            if coords:
                path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
                parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.5" '
                             f'points="{path}"/>')
        parts.append(f'<text x="{PAD + 6 + 130 * k}" y="{PAD - 10}" font-size="11" '
                     f'fill="{color}">{html.escape(columns[series[k]])}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _table(name: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape('' if v is None else _label(v))}</td>"
                                    for v in row) + "</tr>" for row in rows[-200:])
    return (f'<table class="chart" data-panel="{html.escape(name)}" data-points="{len(rows)}">'
            f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")


def _render_panel(store: Store, p: Panel) -> str:
    try:
        columns, rows = store.query(p.sql, read_only=True)
    except LucidstreamError as exc:
        body = f'<p class="error">{html.escape(str(exc))}</p>'
    else:
        if not rows:
            body = f'<p class="empty" data-panel="{p.name}" data-points="0">no data yet</p>'
        elif p.chart == "table":
            body = _table(p.name, columns, rows)
        else:
            body = svg_chart(p.name, p.chart, columns, rows)
    unit = f" ({html.escape(p.unit)})" if p.unit else ""
    return (f'<section id="{p.name}"><h2>{html.escape(p.title)}{unit}</h2>'
            f'<p class="about">{html.escape(p.description)}</p>{body}</section>')


def render_page(store: Store, refresh_s: int = 5) -> str:
    """The whole dashboard as one HTML document."""
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    sections = "".join(_render_panel(store, p) for p in load_panels())
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<meta http-equiv='refresh' content='{refresh_s}'>"
        "<title>lucidstream</title><style>"
        "body{font-family:system-ui,sans-serif;margin:16px;background:#fafafa;color:#222}"
        "main{display:grid;grid-template-columns:repeat(auto-fill,minmax(580px,1fr));gap:12px}"
        "section{background:#fff;border:1px solid #ddd;border-radius:6px;padding:8px 12px}"
        "h2{font-size:15px;margin:4px 0}.about{font-size:11px;color:#666;margin:2px 0 6px}"
        "table{border-collapse:collapse;font-size:11px;display:block;max-height:220px;"
        "overflow:auto}td,th{border-bottom:1px solid #eee;padding:2px 6px;text-align:left}"
        ".error{color:#b00}.empty{color:#888}</style></head><body>"
        f"<h1>lucidstream</h1><p>store: {html.escape(store.safe_dsn)} &middot; {now} &middot; "
        f"refreshes every {refresh_s} s</p><main>{sections}</main></body></html>")


def _loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only.

    >>> _loopback("127.0.0.1"), _loopback("::1"), _loopback("localhost"), _loopback("0.0.0.0")
    (True, True, True, False)
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def load_token(token_file: str | None = None) -> str | None:
    """The dashboard's token: from ``token_file``, else ``LUCIDSTREAM_TOKEN``, else none."""
    if token_file:
        where = f"the token in {token_file!r}"
        try:
            token = Path(token_file).read_text().strip()
        except OSError as exc:
            raise ConfigError(f"cannot read the token file {token_file!r} ({exc.strerror}); "
                              "pass a readable --token-file") from None
    else:
        where, token = "LUCIDSTREAM_TOKEN", os.environ.get("LUCIDSTREAM_TOKEN", "").strip()
        if not token:
            return None
    if len(token) < 16:
        raise ConfigError(f"{where} has {len(token)} characters: use at least 16 (for "
                          "example: openssl rand -hex 16)")
    return token


class DashboardServer:
    """Serves the dashboard of ``store`` on ``host:port`` from a background thread.

    >>> DashboardServer.__name__
    'DashboardServer'
    """

    def __init__(self, store: Store, host: str = "127.0.0.1", port: int = 8050,
                 refresh_s: int = 5, token: str | None = None) -> None:
        if token is None and not _loopback(host):
            raise ConfigError(f"the dashboard on {host} is reachable from other machines: "
                              "set LUCIDSTREAM_TOKEN (or pass --token-file) so only those "
                              "with the token see it, or bind 127.0.0.1")
        self.store = store
        self.refresh_s = refresh_s
        self.token = token
        handler = self._handler()
        try:
            self.httpd = ThreadingHTTPServer((host, port), handler)
        except OSError as exc:
            raise ConfigError(f"cannot serve the dashboard on {host}:{port} ({exc.strerror}); "
                              "pass another --port") from None
        self.httpd.daemon_threads = True
        self.url = f"http://{host}:{self.httpd.server_address[1]}/"
        self._thread: threading.Thread | None = None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _allowed(self) -> bool:
                """Whether the request carries the token (always, without one)."""
                if server.token is None or self.path == "/healthz":
                    return True
                expected = server.token.encode()
                given = self.headers.get("Authorization", "")
                if given.startswith("Bearer ") and \
                        hmac.compare_digest(given[7:].strip().encode(), expected):
                    return True
                for part in self.headers.get("Cookie", "").split(";"):
                    name, _, value = part.strip().partition("=")
                    if name == "lucidstream_token" and \
                            hmac.compare_digest(value.encode(), expected):
                        return True
                return False

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                offered = parse_qs(url.query).get("token", [""])[0]
                if server.token is not None and offered:
                    if not hmac.compare_digest(offered.encode(), server.token.encode()):
                        self._send(401, "text/plain", "wrong token")
                        return
                    self.send_response(303)  # keep the token out of the address bar
                    self.send_header("Location", url.path or "/")
                    self.send_header("Set-Cookie", f"lucidstream_token={server.token}; "
                                     "HttpOnly; SameSite=Strict; Path=/")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if not self._allowed():
                    self._send(401, "text/plain", "this dashboard needs its token: open it "
                               "once with ?token=TOKEN, or send Authorization: Bearer TOKEN")
                    return
                if self.path in ("/", "/index.html"):
                    self._send(200, "text/html; charset=utf-8",
                               render_page(server.store, server.refresh_s))
                elif self.path.startswith("/panel/") and self.path.endswith(".json"):
                    found = panel(self.path[len("/panel/"):-len(".json")])
                    if found is None:
                        self._send(404, "application/json", '{"error": "no such panel"}')
                        return
                    try:
                        columns, rows = server.store.query(found.sql, read_only=True)
                    except LucidstreamError as exc:
                        self._send(500, "application/json", json.dumps({"error": str(exc)}))
                        return
                    self._send(200, "application/json", json.dumps(
                        [dict(zip(columns, r, strict=True)) for r in rows], default=str))
                elif self.path == "/healthz":
                    self._send(200, "text/plain", "ok")
                else:
                    self._send(404, "text/plain", "not found")

            def _send(self, code: int, kind: str, text: str) -> None:
                body = text.encode()
                self.send_response(code)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("dashboard " + format, *args)

        return Handler

    def start(self) -> DashboardServer:
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True,
                                        name="dashboard")
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self.httpd.serve_forever()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
