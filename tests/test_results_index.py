"""docs/results/README.md, every claim on one screen, says what each linked page's opening table says."""
import re
from pathlib import Path

from tests import published_summary as summary

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"
INDEX = RESULTS / "README.md"
PAGES = sorted(path for path in RESULTS.glob("*.md") if path.name != "README.md")


def _index_rows() -> list[list[str]]:
    rows = summary.summary_table(INDEX.read_text())
    assert rows[0] == ["claim", "page", "verdict", "n seeds", "scale"]
    return rows[1:]


def _page_rows(page: Path) -> dict[str, tuple[str, str, str]]:
    """claim -> (verdict word, seed counts of its 'ours' cell, its scale with 'as above' resolved)."""
    rows, scale = {}, ""
    for claim, _, ours, verdict, row_scale in summary.summary_table(page.read_text())[1:]:
        scale = scale if row_scale.startswith("as above") else row_scale
        word = re.match(r"(?:\*\*)?([a-z ]+?)(?:\*\*| \(|$)", verdict)[1]
        seeds = "; ".join(re.findall(r"\d+(?:/\d+)? vs \d+(?:/\d+)?(?= seed)", ours)) or "-"
        rows[claim] = (word, seeds, scale)
    return rows


def _linked(page_cell: str) -> Path:
    target = re.fullmatch(r"\[[^\]]+\]\(([\w-]+\.md)\)", page_cell)
    assert target, f"page cell {page_cell!r} is not one link to a results page"
    return RESULTS / target[1]


def test_every_verdict_seed_count_and_epoch_count_is_the_linked_pages():
    for claim, page_cell, verdict, seeds, scale in _index_rows():
        page = _linked(page_cell)
        claims = _page_rows(page)
        assert claim in claims, f"{page.name} has no claim {claim!r} in its opening table"
        word, page_seeds, page_scale = claims[claim]
        assert re.match(r"[a-z ]+?(?= on a short CPU schedule| \(|$)", verdict)[0] == word, (claim, page.name, verdict)
        assert seeds == page_seeds, (claim, page.name, seeds, page_seeds)
        assert summary.numbers(summary.strip_names(scale)) == summary.numbers(summary.strip_names(page_scale)), \
            (claim, scale, page_scale)
        if "withdrawn" not in verdict:
            assert "short CPU schedule" in verdict, verdict


def test_every_claim_of_every_page_is_on_the_index():
    listed = {(_linked(cells[1]).name, cells[0]) for cells in _index_rows()}
    for page in PAGES:
        for claim in _page_rows(page):
            assert (page.name, claim) in listed, f"docs/results/README.md lacks {page.name}'s claim {claim!r}"


def test_the_index_is_linked_from_the_readme_and_the_site_navigation():
    assert "docs/results/README.md" in (ROOT / "README.md").read_text()
    assert "results/README.md" in (ROOT / "mkdocs.yml").read_text()
