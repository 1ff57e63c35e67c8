"""Compare two `pip freeze` listings: name every preinstalled package that an install replaced or removed.

Usage: python3 .ci/freeze_diff.py BEFORE AFTER  (exit 1, one line per change, when any changed).
"""
import re
import sys


def parse_freeze(text: str) -> dict[str, str]:
    """{canonical name: version} of `name==version` lines; comments, blanks and editables are skipped."""
    packages = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" not in line or line.startswith("-"):
            continue
        name, version = line.split("==", 1)
        packages[re.sub(r"[-_.]+", "-", name).lower()] = version.strip()
    return packages


def replaced(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """'name: old -> new' for each package of `before` that `after` holds at another version or lacks."""
    return [f"{name}: {version} -> {after.get(name, 'removed')}"
            for name, version in sorted(before.items()) if after.get(name) != version]


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: freeze_diff.py BEFORE AFTER", file=sys.stderr)
        return 2
    before, after = (parse_freeze(open(path).read()) for path in argv)
    changes = replaced(before, after)
    for change in changes:
        print(f"freeze_diff: installing replaced {change}", file=sys.stderr)
    return 1 if changes else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
