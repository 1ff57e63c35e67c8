"""The docs site's configuration covers the docs: every page is reachable, every API page names
a module that imports, every example script has a page that includes it. (CI builds the site
with `mkdocs build --strict`, which fails on broken links and unresolved references.)"""
import fnmatch
import importlib
import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"


class ConfigLoader(yaml.SafeLoader):
    """mkdocs.yml may hold !!python tags (the toc slugify function); read them as plain text here."""


ConfigLoader.add_multi_constructor("tag:yaml.org,2002:python/", lambda loader, suffix, node: suffix)
CONFIG = yaml.load((REPO / "mkdocs.yml").read_text(), Loader=ConfigLoader)


def nav_pages(entries) -> list[str]:
    pages = []
    for entry in entries:
        value = next(iter(entry.values())) if isinstance(entry, dict) else entry
        pages += nav_pages(value) if isinstance(value, list) else [value]
    return pages


def test_every_docs_page_is_in_the_navigation_or_deliberately_not():
    in_nav = set(nav_pages(CONFIG["nav"]))
    not_in_nav = [line.strip().lstrip("/") for line in CONFIG.get("not_in_nav", "").splitlines() if line.strip()]
    pages = {path.relative_to(DOCS).as_posix() for path in DOCS.rglob("*.md")}
    missing = sorted(page for page in pages - in_nav if not any(fnmatch.fnmatch(page, p) for p in not_in_nav))
    assert not missing, f"pages neither in mkdocs.yml's nav nor in not_in_nav: {missing}"
    assert in_nav <= pages, f"nav names pages that do not exist: {sorted(in_nav - pages)}"


def test_api_pages_reference_modules_that_import():
    references = []
    for page in (DOCS / "api").glob("*.md"):
        references += re.findall(r"^::: (\S+)$", page.read_text(), flags=re.M)
    assert {"selectivity.measure", "selectivity.regularizer", "selectivity.metrics", "selectivity.capture",
            "selectivity.sweep", "selectivity.report"} <= set(references)
    for module in references:
        importlib.import_module(module)


def test_every_example_script_is_rendered_by_a_page():
    for script in (REPO / "examples").glob("*.py"):
        page = DOCS / "examples" / f"{script.stem}.md"
        assert f'--8<-- "examples/{script.name}"' in page.read_text(), page


def test_the_build_is_strict_and_fails_on_missing_snippets():
    assert CONFIG["strict"] is True
    snippets = next(e["pymdownx.snippets"] for e in CONFIG["markdown_extensions"]
                    if isinstance(e, dict) and "pymdownx.snippets" in e)
    assert snippets["check_paths"] is True
