"""Chapter "Claims check" (``08_claims``): the published claims checked against the results."""

from __future__ import annotations

import html

import pandas as pd

STATUS_COLOURS = {"supported": "#1a7f37", "contradicted": "#cf222e",
                  "not yet run at full scale": "#6e7781"}


def claims_html(checks: pd.DataFrame) -> str:
    """The claims check as an HTML table narrow enough for a book page: one row per checked
    quantity with a coloured status, and under it the criterion and the evidence."""
    head = ("<tr><th>claim</th><th>quantity</th><th>published</th><th>computed</th>"
            "<th>status</th></tr>")
    body = []
    for row in checks.itertuples():
        colour = STATUS_COLOURS[row.status]
        body.append(
            f"<tr><td><strong>{row.claim_id}</strong><br><small>{row.kind}</small></td>"
            f"<td>{html.escape(row.quantity)}</td><td>{html.escape(row.published)}</td>"
            f"<td>{html.escape(row.computed) or '&mdash;'}</td>"
            f'<td><span style="color:{colour};font-weight:bold">{html.escape(row.status)}'
            f"</span></td></tr>"
            f'<tr><td></td><td colspan="4" style="font-size:0.85em;color:#57606a">'
            f"<em>Criterion:</em> {html.escape(row.criterion)}. "
            f"<em>Evidence:</em> {html.escape(row.evidence)}.</td></tr>")
    return (f'<table class="table" style="width:100%;font-size:0.9em">{head}{"".join(body)}'
            "</table>")
