"""Tutorial notebooks: quickstart runs end to end, and no notebook in tutorials/ goes untested."""
from pathlib import Path

import pytest
from conftest import REPO, run_notebook

TUTORIALS = REPO / "tutorials"


def _outputs(nb):
    return "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))


def test_every_notebook_is_executed_by_some_test():
    """A new tutorial must get a test (here or in its own test file), so a broken notebook fails CI."""
    notebooks = sorted(p.name for p in TUTORIALS.glob("*.ipynb"))
    assert "quickstart.ipynb" in notebooks
    sources = "\n".join(p.read_text(encoding="utf-8") for p in Path(__file__).parent.glob("test_*.py"))
    untested = [name for name in notebooks if name not in sources]
    assert not untested, f"tutorials without a test that executes them: {untested}"


def test_committed_notebooks_have_outputs():
    import nbformat

    for path in sorted(TUTORIALS.glob("*.ipynb")):
        nb = nbformat.read(str(path), as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert any(c.get("outputs") for c in code), f"{path.name} is committed without outputs"


@pytest.mark.slow
def test_quickstart_runs():
    nb = run_notebook(TUTORIALS / "quickstart.ipynb", timeout=300, INTERPRETDL_NOISE_QUICK=1)
    text = _outputs(nb)
    assert "quick mode" in text
    assert "AUROC" in text
    assert "Estimated noise rate" in text and "suggested" in text  # the decisions section ran
    assert "Report(N=" in text and "report.html" in text  # the HTML report section ran
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 4  # ROC/PR, histograms, data map, suspicious digits
