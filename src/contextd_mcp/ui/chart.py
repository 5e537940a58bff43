"""The dashboard's chart, as inline SVG drawn here: no script, no style attribute (the CSP
allows neither inline), no third-party library."""

from __future__ import annotations

from html import escape

WIDTH, HEIGHT, PAD = 640, 200, 30
DAYS_SHOWN = 30  # the newest days with ratings


def ratings_svg(ratings: dict[str, list[int]]) -> str:
    """Stacked bars per day: rated helpful (green) over unhelpful (red), newest ``DAYS_SHOWN`` days."""
    days = list(ratings.items())[-DAYS_SHOWN:]
    if not days:
        return '<p class="empty" id="chart-empty">No lesson has been rated yet.</p>'
    top = max(h + u for _, (h, u) in days) or 1
    step = (WIDTH - 2 * PAD) / len(days)
    bar = max(2.0, step * 0.7)
    parts = [
        f'<svg id="ratings-chart" xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="ratings of lessons per day">',
        f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" y2="{HEIGHT - PAD}" stroke="#888"/>',
        f'<text x="2" y="{PAD - 8}" font-size="11" fill="#444">{top}</text>',
    ]
    scale = (HEIGHT - 2 * PAD) / top
    for index, (day, (helpful, unhelpful)) in enumerate(days):
        x = PAD + index * step
        h_good, h_bad = helpful * scale, unhelpful * scale
        base = HEIGHT - PAD
        rate = round(100 * helpful / (helpful + unhelpful)) if helpful + unhelpful else 0
        title = escape(f"{day}: {helpful} helpful, {unhelpful} unhelpful ({rate}% helpful)")
        parts.append(
            f'<g class="day" data-day="{escape(day)}" data-helpful="{helpful}" data-unhelpful="{unhelpful}">'
            f"<title>{title}</title>"
            f'<rect x="{x:.1f}" y="{base - h_good:.1f}" width="{bar:.1f}" height="{h_good:.1f}" fill="#2e7d32"/>'
            f'<rect x="{x:.1f}" y="{base - h_good - h_bad:.1f}" width="{bar:.1f}" height="{h_bad:.1f}" fill="#c62828"/>'
            "</g>"
        )
    first, last = days[0][0], days[-1][0]
    parts.append(f'<text x="{PAD}" y="{HEIGHT - 8}" font-size="11" fill="#444">{escape(first)}</text>')
    parts.append(f'<text x="{WIDTH - PAD}" y="{HEIGHT - 8}" font-size="11" fill="#444" text-anchor="end">{escape(last)}</text>')
    parts.append("</svg>")
    return "".join(parts)
