"""The report page: one self-contained index.html (PNGs as data URIs, inline CSS, no scripts)
and a report.md with the same content that links the PNG files."""
import base64
import html
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from selectivity.report.verdict_history import looks_phrase

CSS = """
body { font-family: sans-serif; max-width: 1200px; margin: 2em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f2f2f2; } td.text { text-align: left; }
figure { margin: 1.5em 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: 0.9em; color: #444; margin-top: 0.3em; }
.note { color: #8a5a00; }
"""


@dataclass(frozen=True)
class FigureEntry:
    """One figure of the report; `skipped` says why when it could not be drawn."""
    heading: str
    caption: str
    png: Path | None = None
    svg: Path | None = None
    skipped: str | None = None
    table: list[list[str]] | None = None  # display cells (header first) shown under the figure


@dataclass(frozen=True)
class PageContent:
    title: str
    claims: list[list[str]]  # the opening table (claims_summary.summary_rows), header first
    facts: list[str]  # short lines about the table: model, dataset, runs, seeds
    headline: list[list[str]]  # rows of cells, first row = header
    summary: list[list[str]]
    comparison: list[list[str]]  # accuracy against alpha = 0; only a header row when there is no baseline
    comparison_note: str  # how the verdicts are made (margin, CI)
    figures: list[FigureEntry]
    notes: list[str]


def mean_with_ci(mean: float, half_width: float, scale: float = 1.0, digits: int = 3) -> str:
    """'0.200 ± 0.012', or just the mean when the CI is undefined (one seed)."""
    if np.isnan(mean):
        return "n/a"
    if np.isnan(half_width):
        return f"{mean * scale:.{digits}f}"
    return f"{mean * scale:.{digits}f} ± {half_width * scale:.{digits}f}"


def summary_rows(conditions: pd.DataFrame) -> list[list[str]]:
    """Per-alpha summary as display cells (header first)."""
    rows = [["alpha", "n seeds", "test accuracy (%)", "mean SI (0-1)", "dead units (%)"]]
    for row in conditions.itertuples(index=False):
        rows.append([row.alpha_label, str(row.n_seeds),
                     mean_with_ci(row.test_accuracy_mean, row.test_accuracy_ci95, 100, 2),
                     mean_with_ci(row.mean_si_mean, row.mean_si_ci95),
                     mean_with_ci(row.dead_fraction_mean, row.dead_fraction_ci95, 100, 2)])
    return rows


def _difference_cell(row) -> str:
    """'-0.30 [-0.90, +0.30]' (points, Welch 95% CI), the difference alone without a CI, or n/a."""
    if np.isnan(row.difference_points):
        return "n/a"
    if np.isnan(row.ci_low_points):
        return f"{row.difference_points:+.2f} (no CI)"
    return f"{row.difference_points:+.2f} [{row.ci_low_points:+.2f}, {row.ci_high_points:+.2f}]"


def _verdict_cell(row) -> str:
    """The (Holm-corrected) verdict, what it was uncorrected when that differs, and for an
    undetermined one the seeds per condition for a 50% and an 80% chance to decide it."""
    if not isinstance(row.verdict, str):
        return "n/a"
    uncorrected = getattr(row, "verdict_uncorrected", "")
    before = f" (uncorrected: {uncorrected})" if isinstance(uncorrected, str) and uncorrected not in ("", row.verdict) \
        else ""
    if row.verdict != "undetermined" or np.isnan(row.seeds_needed):
        return row.verdict + before
    if np.isinf(row.seeds_needed):
        return f"undetermined{before} (no n decides)"
    power = getattr(row, "seeds_needed_80", np.nan)
    likely = getattr(row, "likely_verdict", "")
    at_80 = f", ~{power:.0f} for 80%, likely {likely}" if not np.isnan(power) and isinstance(likely, str) and likely \
        else ""
    return f"undetermined{before} (~{row.seeds_needed:.0f} seeds for 50%{at_80})"


def headline_rows(headline: pd.DataFrame) -> list[list[str]]:
    """Headline table as display cells (header first)."""
    rows = [["headline", "alpha", "value", "unit", "accuracy vs alpha=0 (points, 95% CI)", "verdict", "statement"]]
    for row in headline.itertuples(index=False):
        alpha = "n/a" if np.isnan(row.alpha) else f"{row.alpha:g}"
        value = f"{row.value:.2f}"
        if np.isnan(row.value):  # no claim; an undetermined candidate still has its number
            candidate = getattr(row, "candidate_value", np.nan)
            value = "n/a" if np.isnan(candidate) else f"none shown ({candidate:.2f} undetermined)"
        rows.append([row.key, alpha, value, row.unit, _difference_cell(row), _verdict_cell(row), row.statement])
    return rows


def comparison_rows(compared: pd.DataFrame, history: pd.DataFrame | None = None) -> list[list[str]]:
    """Per-condition accuracy against alpha = 0 as display cells (header first); with a verdict
    history (report.verdict_history), a last column gives each condition's looks."""
    rows = [["alpha", "n seeds (alpha / alpha=0)", "SI(0) / SI(alpha)", "accuracy difference (points, 95% Welch CI)",
             "verdict"] + (["looks (n seeds: verdict)"] if history is not None else [])]
    for row in compared.itertuples(index=False):
        rows.append([row.alpha_label, f"{row.n_alpha} / {row.n_baseline}", f"{row.si_reduction:.2f}",
                     _difference_cell(row), _verdict_cell(row)]
                    + ([looks_phrase(history, row.alpha_label)] if history is not None else []))
    return rows


def _html_table(rows: list[list[str]]) -> str:
    def cell(tag: str, text: str) -> str:
        # words align left, numbers right
        is_text = tag == "td" and any(character.isalpha() for character in text.replace("n/a", ""))
        attribute = ' class="text"' if is_text else ""
        return f"<{tag}{attribute}>{html.escape(text)}</{tag}>"
    header = "".join(cell("th", text) for text in rows[0])
    body = "".join("<tr>" + "".join(cell("td", text) for text in row) + "</tr>" for row in rows[1:])
    return f"<table><thead><tr>{header}</tr></thead><tbody>{body}</tbody></table>"


def _html_figure(entry: FigureEntry) -> str:
    heading = f"<h3>{html.escape(entry.heading)}</h3>"
    if entry.skipped:
        return heading + f"<p class=\"note\">Not drawn: {html.escape(entry.skipped)}</p>"
    encoded = base64.b64encode(entry.png.read_bytes()).decode("ascii")
    return (heading + f"<figure><img src=\"data:image/png;base64,{encoded}\" alt=\"{html.escape(entry.heading)}\">"
            f"<figcaption>{html.escape(entry.caption)} Files: <a href=\"{entry.png.name}\">{entry.png.name}</a>"
            + (f", <a href=\"{entry.svg.name}\">{entry.svg.name}</a>" if entry.svg else "") + ".</figcaption></figure>"
            + (_html_table(entry.table) if entry.table else ""))


def render_html(content: PageContent) -> str:
    """The whole page as one HTML string (no external resources, no scripts)."""
    parts = [f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
             f"<title>{html.escape(content.title)}</title><style>{CSS}</style></head><body>",
             f"<h1>{html.escape(content.title)}</h1>",
             _html_table(content.claims) if len(content.claims) > 1 else "",
             "<ul>" + "".join(f"<li>{html.escape(fact)}</li>" for fact in content.facts) + "</ul>"]
    parts += [f"<p class=\"note\">{html.escape(note)}</p>" for note in content.notes]
    parts += ["<h2>Headline numbers</h2>", _html_table(content.headline),
              "<h2>Summary per alpha (mean ± 95% CI across seeds)</h2>", _html_table(content.summary),
              "<h2>Test accuracy against alpha = 0</h2>", f"<p>{html.escape(content.comparison_note)}</p>",
              _html_table(content.comparison),
              "<h2>Figures</h2>"]
    parts += [_html_figure(entry) for entry in content.figures]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _markdown_table(rows: list[list[str]]) -> str:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"
    return "\n".join([line(rows[0]), line(["---"] * len(rows[0]))] + [line(row) for row in rows[1:]])


def render_markdown(content: PageContent) -> str:
    """The same content as Markdown, linking the PNG files beside it."""
    parts = [f"# {content.title}"] + ([_markdown_table(content.claims)] if len(content.claims) > 1 else [])
    parts.append("\n".join(f"- {fact}" for fact in content.facts))
    parts += [f"> {note}" for note in content.notes]
    parts += ["## Headline numbers", _markdown_table(content.headline),
              "## Summary per alpha (mean ± 95% CI across seeds)", _markdown_table(content.summary),
              "## Test accuracy against alpha = 0", content.comparison_note, _markdown_table(content.comparison),
              "## Figures"]
    for entry in content.figures:
        parts.append(f"### {entry.heading}")
        if entry.skipped:
            parts.append(f"Not drawn: {entry.skipped}")
        else:
            parts.append(f"![{entry.heading}]({entry.png.name})\n\n{entry.caption}"
                         + (f" ([SVG]({entry.svg.name}))" if entry.svg else ""))
            if entry.table:
                parts.append(_markdown_table(entry.table))
    return "\n\n".join(parts) + "\n"
