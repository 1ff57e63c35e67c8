"""Where the real datasets of ../shared/data are, and how the integration tests write them out."""
import os
import subprocess
import sys
from pathlib import Path

# ../shared beside the repository root; SELECTIVITY_SHARED_DATA points elsewhere (e.g. from a git worktree)
SHARED_DATA = Path(os.environ.get("SELECTIVITY_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def write_standard_layout(script: str, root: Path) -> Path:
    """Run ../shared/data/<script> ROOT (it writes the dataset's standard layout); returns ROOT."""
    subprocess.run([sys.executable, str(SHARED_DATA / script), str(root)], check=True, capture_output=True)
    return root
