"""``python -m softjit`` and ``benchmarks/run.py``: the sub-commands, help,
outputs and errors, run in subprocesses; the self-check's coverage and its
failure path, and the benchmark result object, in process.

The benchmark runs here are kept tiny with the public options: the
``tiny`` grid, ``--filter`` to one or two cases, ``--only softjit`` and
``--repeats 1``.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import softjit
from softjit import gufuncs
from softjit.cli import bench, check
from softjit.cli import main as cli

PACKAGE_PARENT = Path(softjit.__file__).resolve().parent.parent
RUN_PY = Path(__file__).resolve().parent.parent / "benchmarks" / "run.py"
TIMEOUT = 300  # seconds per child; a cold numba cache compiles every kernel
TINY = ["--grid", "tiny", "--only", "softjit", "--repeats", "1"]
#: The public array functions.
PUBLIC = sorted(n for n in softjit.__all__ if not n.startswith("__"))


def run(*args: str, cwd: Path, script: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m softjit ARGS`` (or ``python SCRIPT ARGS``) in ``cwd``,
    importing the softjit under test."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(PACKAGE_PARENT), env.get("PYTHONPATH")) if p)
    command = [sys.executable, *(["-m", "softjit"] if script is None else [str(script)])]
    return subprocess.run([*command, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=TIMEOUT, check=False)


def assert_usage_error(proc: subprocess.CompletedProcess[str], *words: str) -> None:
    """Exit status 2, nothing on stdout, one line on stderr naming ``words``."""
    assert proc.returncode == 2, proc
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("python -m softjit")
    for word in words:
        assert word in lines[0]


# ---------------------------------------------------------------------------
# Help and usage errors (no numba work)
# ---------------------------------------------------------------------------


def test_help_lists_the_sub_commands(tmp_path: Path) -> None:
    proc = run("--help", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    for word in ("info", "check", "warm", "bench", "--no-bench", "exit status"):
        assert word in proc.stdout


@pytest.mark.parametrize(("command", "words"), [
    ("info", ["threading layer", "cache"]),
    ("check", ["float64 reference", "status 1"]),
    ("warm", ["cache", "NUMBA_CACHE_DIR"]),
    ("bench", ["--quick", "--grid", "--json", "--plot", "--only", "--filter", "--repeats"]),
])
def test_each_sub_command_has_help(tmp_path: Path, command: str, words: list[str]) -> None:
    proc = run(command, "--help", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"usage: python -m softjit {command}")
    for word in words:
        assert word in proc.stdout


def test_bad_option_gives_one_line_and_status_2(tmp_path: Path) -> None:
    assert_usage_error(run("--bogus", cwd=tmp_path), "unrecognized arguments: --bogus")
    assert_usage_error(run("bench", "--repeats", "0", cwd=tmp_path), "--repeats", "'0'")


@pytest.mark.parametrize(("args", "words"), [
    (["frobnicate"], ["invalid choice", "frobnicate"]),
    (["check", "--quick"], ["unrecognized arguments: --quick"]),
    (["bench", "--repeats", "many"], ["--repeats", "many"]),
    (["bench", "--grid", "huge"], ["--grid", "huge"]),
    (["bench", "--quick", "--grid", "tiny"], ["not allowed"]),
    (["bench", "--only", "softjit,nope"], ["--only", "nope"]),
    (["bench", "--filter", "no such case"], ["--filter", "no such case"]),
    (["bench", "--plot", "figure.unknown"], ["--plot", "unknown"]),
])
def test_bad_options_in_process(
    capsys: pytest.CaptureFixture[str], args: list[str], words: list[str]
) -> None:
    if "figure.unknown" in args:
        pytest.importorskip("matplotlib")
    try:
        status = cli.main(args)
    except SystemExit as exc:  # argparse's errors exit from the parser
        status = exc.code
    captured = capsys.readouterr()
    assert_usage_error(subprocess.CompletedProcess(args, status, captured.out, captured.err),
                       *words)


@pytest.mark.parametrize("flag", ["--json", "--plot"])
def test_unwritable_output_path_gives_status_2_before_running(tmp_path: Path, flag: str) -> None:
    if flag == "--plot":
        pytest.importorskip("matplotlib")
    missing = tmp_path / "no-such-directory" / "out.png"
    assert_usage_error(run("bench", *TINY, flag, str(missing), cwd=tmp_path), flag,
                       "no-such-directory")
    assert_usage_error(run("bench", *TINY, flag, str(tmp_path), cwd=tmp_path), flag,
                       "directory")
    assert not missing.parent.exists()


# ---------------------------------------------------------------------------
# The sub-commands
# ---------------------------------------------------------------------------


@pytest.mark.slow
def test_info(tmp_path: Path) -> None:
    proc = run("info", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for word in (f"softjit {softjit.__version__}", f"numpy {np.__version__}", "numba ",
                 "CPU: ", "numba threading layer: ", "threads: ", "numba cache directory: "):
        assert word in out


@pytest.mark.slow
def test_check_passes_for_every_function(tmp_path: Path) -> None:
    proc = run("check", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    verdicts = {line.split()[0]: line.split()[1] for line in proc.stdout.splitlines()[1:-1]}
    names = set(PUBLIC) | {f"gufuncs.{n}" for n in gufuncs.__all__}
    assert set(verdicts) == names
    assert set(verdicts.values()) == {"PASS"}
    assert proc.stdout.splitlines()[-1] == f"self-check: {len(names)} of {len(names)} passed"


@pytest.mark.slow
def test_bench_writes_json_and_reports_progress(tmp_path: Path) -> None:
    proc = run("bench", *TINY, "--filter", "x16 float64", "--json", "out.json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    data = json.loads((tmp_path / "out.json").read_text())
    labels = [bench.Case(r["op"], tuple(r["shape"]), r["dtype"]).label
              for r in data["results"]]
    assert labels == [c.label for c in bench.default_grid("tiny") if "x16 float64" in c.label]
    assert all(set(r["seconds"]) == {"copy", "softjit"} for r in data["results"])
    assert data["environment"]["softjit"] == softjit.__version__
    # progress on stderr, one line per case (not a terminal) and a last line
    progress = [line for line in proc.stderr.splitlines() if line.startswith("[")]
    assert len(progress) == 5
    assert "0/4 softmax 1x16 float64" in progress[0] and "4/4 done" in progress[-1]
    assert "results written to out.json" in proc.stderr
    # the environment and the table on stdout
    assert "numba threading layer" in proc.stdout
    assert "softmax 65536x16 float64" in proc.stdout.splitlines()[-1]


@pytest.mark.slow
def test_bench_plot(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    proc = run("bench", *TINY, "--filter", "1x", "--plot", "bench.png", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_main_job_without_bench(tmp_path: Path) -> None:
    """The CI's form of the README's main-job command."""
    proc = run("--no-timing", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "numba threading layer" in proc.stdout
    assert "self-check: " in proc.stdout and "FAIL" not in proc.stdout
    assert "softjit/copy" not in proc.stdout


@pytest.mark.slow
def test_benchmarks_run_py(tmp_path: Path) -> None:
    proc = run(*TINY, "--filter", "1x16", "--json", "run.json", cwd=tmp_path, script=RUN_PY)
    assert proc.returncode == 0, proc.stderr
    assert "softmax 1x16 float32" in proc.stdout
    assert len(json.loads((tmp_path / "run.json").read_text())["results"]) == 2
    bad = run("--only", "nope", cwd=tmp_path, script=RUN_PY)
    assert bad.returncode == 2 and "nope" in bad.stderr


# ---------------------------------------------------------------------------
# In process: the main job's benchmark, the check's failure path, results
# ---------------------------------------------------------------------------


def test_check_covers_every_public_function() -> None:
    names = {c.name for c in check.CHECKS}
    assert names == set(PUBLIC) | {f"gufuncs.{n}" for n in gufuncs.__all__}


def test_main_job_runs_info_check_and_bench(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    grid = [bench.Case("softmax", (14,), "float64")]
    monkeypatch.setattr(bench, "default_grid", lambda name: grid)
    assert cli.main([]) == 0
    captured = capsys.readouterr()
    assert "numba threading layer" in captured.out
    assert "self-check: " in captured.out
    assert captured.out.splitlines()[-1].startswith("softmax 14 float64")
    assert "1/1 done" in captured.err


def test_check_fails_on_a_wrong_result(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = softjit.softmax
    monkeypatch.setattr(softjit, "softmax", lambda *a, **k: real(*a, **k) * (1 + 1e-4))
    assert cli.main(["check"]) == 1
    out = capsys.readouterr().out
    assert [line.split()[1] for line in out.splitlines() if line.startswith("softmax ")] == [
        "FAIL"]
    assert "FAILED: softmax" in out.splitlines()[-1]


def _broken(*args: object, **kwargs: object) -> None:
    raise RuntimeError("broken")


@pytest.mark.parametrize(("make_patch", "note"), [
    (lambda real: _broken, "RuntimeError: broken"),
    (lambda real: lambda *a, **k: real(*a, **k).astype(np.float64),
     "dtype float64, expected float32"),
    (lambda real: lambda *a, **k: real(*a, **k)[..., :1], "shape (1,), expected (14,)"),
])
def test_check_reports_exceptions_dtypes_and_shapes(
    monkeypatch: pytest.MonkeyPatch, make_patch, note: str
) -> None:
    monkeypatch.setattr(softjit, "softmax_vjp", make_patch(softjit.softmax_vjp))
    (result,) = check.run_all([c for c in check.CHECKS if c.name == "softmax_vjp"])
    assert not result.passed
    assert note in result.line()


def test_bench_result_table_html_and_json(tmp_path: Path) -> None:
    records = [{"op": "softmax", "shape": [1000, 100], "dtype": "float32", "size": 100_000,
                "seconds": {"copy": 1e-5, "softjit": 5e-5, "numpy": 2e-4}},
               {"op": "softmax", "shape": [1, 4096], "dtype": "float64", "size": 4096,
                "seconds": {"copy": 1e-6, "numpy": 2e-5}}]
    result = bench.BenchResult({"cpu": "a <test> CPU"}, records)
    lines = str(result).splitlines()
    assert lines[0].split() == ["case", "softjit", "copy", "numpy", "softjit/copy",
                                "numpy/softjit"]
    assert lines[1].split()[-2:] == ["5.00", "4.00"]
    assert lines[2].split()[3] == "-"  # no softjit time: no ratio
    page = result._repr_html_()
    assert page.count("<tr>") == 3 and "a &lt;test&gt; CPU" in page
    result.to_json(tmp_path / "r.json")
    assert bench.BenchResult.from_json(tmp_path / "r.json") == result


def test_bench_table_best_peer_and_sections() -> None:
    """The faster of torch and jax over softjit, per case; the cross-entropy
    cases in a table of their own, with only the columns they fill."""
    records = [{"op": "softmax", "shape": [10, 10], "dtype": "float32", "size": 100,
                "seconds": {"copy": 1e-6, "softjit": 2e-6, "torch": 3e-6, "jax": 5e-6}},
               {"op": "logsumexp", "shape": [10, 10], "dtype": "float32", "size": 100,
                "seconds": {"copy": 1e-6, "softjit": 4e-6, "jax": 2e-6}},
               {"op": "cross_entropy_with_grad", "shape": [10, 10], "dtype": "float32",
                "size": 100, "seconds": {"softjit": 4e-6, "softjit.softmax": 2e-6,
                                         "torch": 8e-6}}]
    result = bench.BenchResult({}, records)
    first, second = str(result).split("\n\n")
    lines = first.splitlines()
    assert lines[0].endswith("best peer/softjit")
    assert lines[1].split()[-1] == "1.50"  # torch 3 us over softjit 2 us
    assert lines[2].split()[-1] == "0.50"  # jax 2 us over softjit 4 us
    assert "softjit.softmax" not in first
    assert "copy" not in second.splitlines()[0].split()
    assert second.splitlines()[1].split()[-1] == "2.00"
    page = result._repr_html_()
    assert page.count("<table>") == 2
    md = result.markdown().split("\n\n")
    assert len(md) == 2 and md[0].startswith("| case |") and "best peer/softjit" in md[0]
    assert md[0].splitlines()[2].endswith("| 1.50 |")


def test_bench_result_plot_returns_a_figure(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    records = [{"op": "softmax", "shape": list(shape), "dtype": dtype, "size": int(np.prod(shape)),
                "seconds": {"copy": 1e-6, "softjit": 4e-6}}
               for dtype in ("float32", "float64") for shape in ((1, 16), (4, 4096))]
    fig = bench.BenchResult({}, records).plot(tmp_path / "p.svg")
    assert isinstance(fig, Figure)
    assert len([ax for ax in fig.axes if ax.has_data()]) == 4
    assert (tmp_path / "p.svg").stat().st_size > 0


def test_progress_redraws_one_line_on_a_terminal() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Terminal()
    progress = bench.TextProgress(stream, width=4)
    cases = [bench.Case("softmax", (1000, 100), "float64"), bench.Case("softmax", (14,),
                                                                           "float64")]
    progress.begin({}, cases)
    for i, case in enumerate(cases):
        progress.start(i, case)
        progress.finish(i, {})
    screens = stream.getvalue().split("\r")[1:]
    assert [s.split(" (")[0] for s in screens] == [
        "[....] 0/2 softmax 1000x100 float64", "[##..] 1/2 softmax 14 float64", "[####] 2/2 done"]
    assert len(screens[1]) >= len(screens[0])  # padded over the longer line
    assert stream.getvalue().count("\n") == 1 and stream.getvalue().endswith("\n")


def test_full_grid_keeps_every_operation() -> None:
    ops = {c.op for c in bench.default_grid("full")}
    assert ops == set(bench.OPS)
    assert {c.label for c in bench.default_grid("quick")} <= {
        c.label for c in bench.default_grid("full")}
