"""The pages of docs/ are executable: every ```python block of a page is a doctest.

Each page runs in its own fresh namespace, its blocks in order (a later block sees the names
an earlier one defined), with a temporary folder as the working directory. A block holds
``>>> `` / ``... `` lines followed by the output they print; the test fails, naming the page
and the line, when an output differs. Only ```python blocks run: other fences (shell
commands, tables) are text.

    python -m pytest -q tests/test_docs.py              # every page
    python -m pytest -q tests/test_docs.py -k resnet    # one page
"""
import doctest
import importlib.util
import os
import re
from pathlib import Path

import numpy as np
import pytest

import tinycnn.data
import tinycnn.random

# Long tables wrap and tracebacks or big numbers may be elided with "...". A page's examples
# build on each other, so after the first failure the rest would mostly repeat it: stop there.
OPTIONS = doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS | doctest.FAIL_FAST

DOCS = Path(__file__).resolve().parent.parent / "docs"
PAGES = sorted(path for path in DOCS.glob("*.md") if path.name != "README.md")

FENCE = re.compile(r"^(\s*)(```+|~~~+)\s*(\S*)")


def python_blocks_only(text):
    """``text`` with every line outside ```python blocks blanked, so line numbers stay those of the page.

    Returns (masked text, [first line number of each python block]).
    """
    lines = text.splitlines()
    kept, starts = [""] * len(lines), []
    fence = language = None
    for number, line in enumerate(lines):
        match = FENCE.match(line)
        if fence is None:
            if match:
                fence, language = match.group(2), match.group(3).lower()
                if language == "python":
                    starts.append(number + 1)
        elif match and match.group(2).startswith(fence[0]) and len(match.group(2)) >= len(fence) \
                and not match.group(3):
            fence = language = None
        elif language == "python":
            kept[number] = line
    if fence is not None:
        raise ValueError(f"unclosed {fence} code block")
    return "\n".join(kept) + "\n", starts


def run_page(path):
    """Run the doctests of one Markdown page; return (examples run, failure report or "")."""
    path = Path(path)
    text, starts = python_blocks_only(path.read_text(encoding="utf-8"))
    parser = doctest.DocTestParser()
    test = parser.get_doctest(text, {"__name__": path.stem}, path.name, str(path), 0)
    # A python block without a single example would silently test nothing.
    lines_with_examples = {example.lineno for example in test.examples}
    empty = [start for start, end in zip(starts, starts[1:] + [len(text.splitlines()) + 1])
             if not any(start <= line < end for line in lines_with_examples)]
    if empty:
        return len(test.examples), "".join(
            f'File "{path}", line {start}: a ```python block without any ">>> " example\n' for start in empty)
    report = []
    runner = doctest.DocTestRunner(optionflags=OPTIONS)
    state = tinycnn.random.get_state()
    try:
        runner.run(test, out=report.append, clear_globs=True)
    finally:
        tinycnn.random.set_state(state)
    return len(test.examples), "".join(report)


NEEDS_DATASET = re.compile(r"<!-- needs dataset: ([\w-]+)")


def missing_dataset(page):
    """The dataset a page trains on (a ``<!-- needs dataset: NAME -->`` line) when it is not installed."""
    match = NEEDS_DATASET.search(page.read_text(encoding="utf-8"))
    if match is None:
        return None
    found = any(location.found is not None for location in tinycnn.data.locate(match.group(1)))
    return None if found else match.group(1)


@pytest.mark.parametrize("page", PAGES, ids=[path.name for path in PAGES])
def test_page(page, tmp_path, monkeypatch):
    dataset = missing_dataset(page)
    if dataset is not None:      # as the tests of the dataset readers on the real files
        pytest.skip(f"{page.name} trains on {dataset}, which is not installed (apt-get install -y dataset-{dataset})")
    monkeypatch.chdir(tmp_path)
    count, report = run_page(page)
    assert count > 0, f"{page.name} has no >>> examples"
    if report:
        pytest.fail(f"{page.name}: an output differs from the page\n{report}", pytrace=False)


def test_a_page_that_needs_a_missing_dataset_says_which(tmp_path, monkeypatch):
    class Location:
        def __init__(self, found):
            self.found = found

    installed = {"mnist": [Location(None), Location("train-images-idx3-ubyte.gz")], "cifar10": [Location(None)]}
    monkeypatch.setattr(tinycnn.data, "locate", lambda name: installed[name])
    page = tmp_path / "page.md"
    page.write_text("# A page\n<!-- needs dataset: cifar10 -->\n", encoding="utf-8")
    assert missing_dataset(page) == "cifar10"
    page.write_text("<!-- needs dataset: mnist -->\n", encoding="utf-8")
    assert missing_dataset(page) is None
    page.write_text("no comment\n", encoding="utf-8")
    assert missing_dataset(page) is None


def test_the_index_lists_every_page():
    index = (DOCS / "README.md").read_text(encoding="utf-8")
    linked = set(re.findall(r"\]\(([\w.-]+\.md)\)", index))
    assert linked == {path.name for path in PAGES}


# ----- the runner itself ---------------------------------------------------------------------------

GOOD_PAGE = """# A page

Some prose with a >>> that is not code.

```python
>>> x = 6 * 7
>>> x
42
```

A shell block does not run:

```bash
>>> this would fail
```

```python
>>> print(x + 1)        # names carry over from the block above
43
>>> list(range(30))
[0, 1, 2, ..., 29]
```
"""


def write(tmp_path, text, name="page.md"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_runner_passes_a_correct_page(tmp_path):
    count, report = run_page(write(tmp_path, GOOD_PAGE))
    assert (count, report) == (4, "")


def test_runner_fails_on_a_wrong_output_naming_the_page_and_line(tmp_path):
    page = write(tmp_path, GOOD_PAGE.replace("43", "44"), "bad.md")
    count, report = run_page(page)
    assert count == 4
    line = GOOD_PAGE.splitlines().index(">>> print(x + 1)        # names carry over from the block above") + 1
    assert f'File "{page}", line {line}' in report
    assert "Expected:\n    44\nGot:\n    43" in report
    # Only the first failure is reported: the examples after it build on it.
    _, report = run_page(write(tmp_path, GOOD_PAGE.replace("42", "41").replace("43", "44"), "worse.md"))
    assert report.count("Failed example") == 1 and "Expected:\n    41\nGot:\n    42" in report


def test_runner_reports_an_exception_and_a_python_block_without_examples(tmp_path):
    _, report = run_page(write(tmp_path, "```python\n>>> 1 / 0\n0\n```\n"))
    assert "ZeroDivisionError" in report and "line 2" in report
    _, report = run_page(write(tmp_path, "text\n\n```python\nx = 1\n```\n"))
    assert "line 3" in report and "without any" in report
    with pytest.raises(ValueError, match="unclosed"):
        run_page(write(tmp_path, "```python\n>>> 1\n1\n"))


def test_each_page_gets_a_fresh_namespace(tmp_path):
    first = write(tmp_path, "```python\n>>> secret = 1\n```\n", "first.md")
    second = write(tmp_path, "```python\n>>> secret\nTraceback (most recent call last):\n"
                             "NameError: name 'secret' is not defined\n```\n", "second.md")
    assert run_page(first)[1] == "" and run_page(second)[1] == ""


# ----- the scripts that make the pictures and the recorded run ------------------------------------

def load_script(name):
    """docs/<name>.py as a module (docs/ is not a package)."""
    spec = importlib.util.spec_from_file_location(name, DOCS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_make_images_runs_a_page_in_the_pictures_folder(tmp_path, capsys):
    make_images = load_script("make_images")
    page = write(tmp_path, "```python\n>>> from pathlib import Path\n>>> Path('picture.png').write_bytes(b'png')\n3\n"
                           ">>> sorted(path.name for path in Path().iterdir())\n['picture.png']\n```\n")
    here = os.getcwd()
    assert make_images.main([page], tmp_path / "images") == 0
    assert (tmp_path / "images" / "picture.png").read_bytes() == b"png"
    assert os.getcwd() == here
    # a page whose output differs fails, with the doctest report
    assert make_images.main([write(tmp_path, "```python\n>>> 1 + 1\n3\n```\n", "bad.md")], tmp_path / "images") == 1
    assert "Expected:\n    3\nGot:\n    2" in capsys.readouterr().out
    assert os.getcwd() == here


def test_record_runs_reads_the_report_that_tinycnn_train_writes(tmp_path):
    from tinycnn.cli import write_report
    record_runs = load_script("record_runs")
    scores = np.array([[3, 2, 1], [1, 3, 2], [3, 1, 2], [1, 3, 2]], dtype=np.float32)
    labels = np.array([0, 1, 2, 2])         # right, right, third choice, second choice
    write_report(scores, labels, ["a", "b", "c"], str(tmp_path))
    assert record_runs.read_report(tmp_path) == {"rank-1": 0.5, "rank-3": 1.0}
