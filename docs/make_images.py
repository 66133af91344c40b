"""Regenerate the pictures of docs/looking_inside.md by running the page in docs/images/.

    python docs/make_images.py

The page's code writes its PNGs into the working folder; the test suite runs it in a temporary
one, this script in ``docs/images/``, with the same runner (tests/test_docs.py), so the committed
pictures are what the checked code draws. It fails if an output of the page differs. The README
run's pictures (``readme_run_*.png``) come from ``docs/record_runs.py``.
"""
import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
PAGES = ["looking_inside.md"]


def main(pages=PAGES, folder=DOCS / "images"):
    """Run each page in ``folder``; 0 when every output matched, else 1 after printing the report."""
    sys.path.insert(0, str(DOCS.parent / "tests"))
    from test_docs import run_page

    folder = Path(folder)
    folder.mkdir(exist_ok=True)
    here = os.getcwd()
    os.chdir(folder)
    try:
        for page in pages:
            count, report = run_page(DOCS / page)
            if report:
                print(report)
                return 1
            print(f"{Path(page).name}: {count} examples run, pictures written to {folder}")
    finally:
        os.chdir(here)
    return 0


if __name__ == "__main__":
    sys.exit(main())
