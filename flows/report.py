"""The fault scenario suite's HTML report: one timeline per scenario.

Self-contained (inline SVG and CSS, no script, nothing fetched): the fault's
window shaded, every alarm a mark (red where nothing explains it), and the
mode as a band along the bottom, all on the pipeline clock.
"""

from __future__ import annotations

import html
from pathlib import Path

__all__ = ["write_report"]

WIDTH, LANE, LEFT = 900, 16, 150
MODE_COLOURS = {"NORMAL": "#cfe8cf", "REACTIVE_ONLY": "#ffe2a8", "PAUSED": "#f7c6a3",
                "CONSERVATIVE": "#f4a6a6"}


def _timeline(r: dict) -> str:
    clock = r.get("clock") or {}
    first, last = clock.get("first_ms"), clock.get("last_ms")
    if first is None or last is None or last <= first:
        return "<p>no timeline (the scenario did not run)</p>"
    span = last - first

    def x(ms: int) -> float:
        return LEFT + (min(max(ms, first), last) - first) / span * (WIDTH - LEFT - 10)

    false = {(a["at"], a["source_id"], a["signal"]) for a in r.get("false_alarm_list", [])}
    signals = sorted({a["signal"] for a in r["alarms"]})
    lanes = {s: i for i, s in enumerate(signals)}
    height = (len(signals) + 2) * LANE + 30
    parts = [f'<svg width="{WIDTH}" height="{height}" role="img" '
             f'aria-label="timeline of {html.escape(r["scenario"])}">']
    window = r.get("window")
    if window and r["kind"] != "control":
        a, b = x(window["start"]["arrival_ms"]), x(window["end"]["arrival_ms"])
        parts.append(f'<rect class="fault" x="{a:.1f}" y="0" width="{max(b - a, 2):.1f}" '
                     f'height="{height - 30}" fill="#dde6f7"><title>fault window</title></rect>')
    for signal, i in lanes.items():
        y = i * LANE + LANE
        parts.append(f'<text x="4" y="{y + 4}" font-size="11">{html.escape(signal)}</text>')
    for a in r["alarms"]:
        y = lanes[a["signal"]] * LANE + LANE
        colour = "#c0392b" if (a["at"], a["source_id"], a["signal"]) in false else "#2c3e50"
        label = html.escape(f"{a['signal']} {a['source_id'] or 'fleet'} at "
                            f"+{(a['at'] - first) / 1000:.1f} s")
        parts.append(f'<circle class="alarm" cx="{x(a["at"]):.1f}" cy="{y}" r="4" '
                     f'fill="{colour}"><title>{label}</title></circle>')
    band_y = (len(signals) + 1) * LANE
    parts.append(f'<text x="4" y="{band_y + 10}" font-size="11">mode</text>')
    mode, since = "NORMAL", first
    for change in [*r["modes"], {"at": last, "to": None}]:
        a, b = x(since), x(change["at"])
        parts.append(f'<rect class="mode" x="{a:.1f}" y="{band_y}" width="{max(b - a, 0):.1f}"'
                     f' height="12" fill="{MODE_COLOURS.get(mode, "#ddd")}">'
                     f'<title>{mode}</title></rect>')
        mode, since = change["to"] or mode, change["at"]
    parts.append(f'<text x="{LEFT}" y="{height - 8}" font-size="11">0 s</text>'
                 f'<text x="{WIDTH - 60}" y="{height - 8}" font-size="11">'
                 f'{span / 1000:.0f} s</text></svg>')
    return "".join(parts)


def write_report(results: list[dict], path: Path) -> None:
    rows, sections = [], []
    for r in results:
        verdict = "pass" if r.get("passed") else "FAIL"
        name = html.escape(f"{r['scenario']} (seed {r['seed']})")
        if r.get("error"):
            rows.append(f"<tr><td>{name}</td><td colspan=5>{html.escape(r['error'])}</td>"
                        f"<td class=FAIL>FAIL</td></tr>")
            continue
        if not r["detected"]:
            caught = "no"
        elif r["signal"] is None:  # the control: nothing to catch, nothing false
            caught = "-"
        else:
            caught = html.escape(f"{r['signal']} @ {r['source'] or 'fleet'}")
        delay = "" if r["delay_clock_ms"] is None else f"{r['delay_clock_ms'] / 1000:.1f} s"
        rows.append(f"<tr><td>{name}</td><td>{caught}</td><td>{delay}</td>"
                    f"<td>{html.escape(r['mode_reached'])}</td><td>{r['false_alarms']}</td>"
                    f"<td>{r['stale_marked_fresh']} / {r['lost']} / {r['doubled']}</td>"
                    f"<td class={verdict}>{verdict}</td></tr>")
        sections.append(f'<section id="{html.escape(r["scenario"])}-{r["seed"]}"><h2>{name}: '
                        f'{verdict}</h2>{_timeline(r)}</section>')
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>lucidstream fault scenarios</title>
<style>body{{font-family:sans-serif;margin:24px;color:#222}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 8px;font-size:13px}}.pass{{color:#1e7b34}}
.FAIL{{color:#c0392b;font-weight:bold}}h2{{font-size:15px;margin:18px 0 4px}}</style></head>
<body><h1>Fault scenarios</h1>
<p>Each timeline is the pipeline clock of one replay: the fault's window shaded blue, each
alarm a dot on its signal's lane (red: nothing explains it), the mode as the band below.</p>
<table><tr><th>scenario</th><th>caught by</th><th>delay</th><th>mode reached</th>
<th>false alarms</th><th>stale as fresh / lost / doubled</th><th>result</th></tr>
{''.join(rows)}</table>
{''.join(sections)}
</body></html>
"""
    path.write_text(page)
