"""Execute every notebook in ``notebooks/`` and check that it is stored clean.

Each ``notebooks/*.ipynb`` (found by glob, so new notebooks are covered without
editing this file) is run top to bottom with nbclient in a fresh kernel whose
working directory is ``notebooks/``; any cell error -- in particular a failed
``assert`` in a notebook cell -- fails the test and shows the cell's traceback.

Notebooks are committed without outputs, so they stay small, diff-friendly and
never show stale results; ``test_notebook_is_stored_clean`` enforces that.

The kernel runs the interpreter running the tests: the kernelspec used here is
written to a temporary directory with ``sys.executable`` as its command, rather
than taken from whatever ``python3`` kernelspec Jupyter would find on this
machine (a user-level one may point at another environment, and a spec whose
command is a bare ``python`` depends on jupyter_client's substitution of
``sys.executable``).  ``test_kernel_runs_this_interpreter`` checks that the
kernel sees the same ``sys.executable``, ``sys.prefix`` and ``softjit``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("jupyter_client")

from jupyter_client.kernelspec import KernelSpecManager  # noqa: E402
from jupyter_client.manager import AsyncKernelManager  # noqa: E402

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))

KERNEL_NAME = "python3"
CELL_TIMEOUT = 300  # seconds per cell; the first call of each kernel compiles it
STARTUP_TIMEOUT = 120  # seconds for the kernel to start
MAX_NOTEBOOK_BYTES = 200_000

notebook_params = pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])


@pytest.fixture(scope="module")
def kernel_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A kernelspec directory whose ``python3`` kernel is ``sys.executable``,
    importing the same softjit as the tests (the source tree or the install)."""
    import softjit

    root = tmp_path_factory.mktemp("kernels")
    package_parent = str(Path(softjit.__file__).resolve().parent.parent)
    pythonpath = os.pathsep.join(p for p in (package_parent, os.environ.get("PYTHONPATH")) if p)
    spec_dir = root / KERNEL_NAME
    spec_dir.mkdir()
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": f"Python 3 ({sys.executable})",
        "language": "python",
        "env": {"PYTHONPATH": pythonpath},
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec), encoding="utf-8")
    return root


def _execute(nb: nbformat.NotebookNode, kernel_dir: Path, cwd: Path) -> nbformat.NotebookNode:
    """Run all cells of ``nb`` in place; raises ``CellExecutionError`` on an error."""
    km = AsyncKernelManager(
        kernel_name=KERNEL_NAME,
        kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernel_dir)]),
    )
    client = nbclient.NotebookClient(
        nb,
        km=km,
        kernel_name=KERNEL_NAME,
        timeout=CELL_TIMEOUT,
        startup_timeout=STARTUP_TIMEOUT,
        allow_errors=False,
        resources={"metadata": {"path": str(cwd)}},  # the kernel's working directory
    )
    # nbclient leaves a kernel it did not create running unless told otherwise.
    return client.execute(cleanup_kc=True)


def _stdout(cell: nbformat.NotebookNode) -> str:
    return "".join(
        out.get("text", "")
        for out in cell.get("outputs", [])
        if out.get("output_type") == "stream" and out.get("name") == "stdout"
    )


def test_notebooks_found() -> None:
    assert NOTEBOOKS, f"no notebooks found in {NOTEBOOK_DIR}"


@notebook_params
def test_notebook_is_stored_clean(path: Path) -> None:
    size = path.stat().st_size
    assert size < MAX_NOTEBOOK_BYTES, f"{path.name} is {size} bytes (limit {MAX_NOTEBOOK_BYTES})"
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    dirty = [
        i
        for i, cell in enumerate(nb.cells)
        if cell.cell_type == "code" and (cell.get("outputs") or cell.get("execution_count"))
    ]
    assert not dirty, (
        f"{path.name}: code cells {dirty} have stored outputs or execution counts; "
        "clear them (e.g. `jupyter nbconvert --clear-output --inplace`)"
    )


@pytest.mark.slow
@notebook_params
def test_notebook_runs(path: Path, kernel_dir: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    _execute(nb, kernel_dir, cwd=NOTEBOOK_DIR)


@pytest.mark.slow
def test_kernel_runs_this_interpreter(kernel_dir: Path) -> None:
    import softjit

    probe = nbformat.v4.new_notebook()
    probe.cells.append(
        nbformat.v4.new_code_cell(
            "import os, sys, softjit\n"
            "print(sys.executable)\n"
            "print(sys.prefix)\n"
            "print(softjit.__file__)\n"
            "print(os.getcwd())"
        )
    )
    _execute(probe, kernel_dir, cwd=NOTEBOOK_DIR)
    lines = _stdout(probe.cells[0]).splitlines()
    assert lines == [sys.executable, sys.prefix, softjit.__file__, str(NOTEBOOK_DIR)]
