"""The ``fedwave`` command's quick exit (``fedwave.cli.entry``): the command's status comes out, every
``atexit`` handler runs, every open file keeps its bytes; only the interpreter's teardown is skipped."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

SCRIPT = """
import atexit, sys
import fedwave.cli as cli
held = open(sys.argv[1], "w")  # left open and unflushed: the quick exit must still write it out
held.write("kept" * 1000)
sys.argv = ["fedwave", *sys.argv[2:]]
def late() -> None:
    with open(sys.argv[-1] + ".atexit", "w") as f:
        f.write("ran")
real = cli.main
def main(argv=None):
    atexit.register(late)  # a handler the command registers (as Ray or a process pool would)
    return real(argv)
cli.main = main
cli.entry()
"""


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "held.txt"), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _python(code: str, *paths: Path) -> subprocess.CompletedProcess[str]:
    """``python -c code path ...`` in a fresh interpreter."""
    args = [sys.executable, "-c", code, *map(str, paths)]
    return subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)


def test_a_finished_command_keeps_its_status_files_and_handlers(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = _run(tmp_path, "run", "-q", "-o", "fl.rounds=2", "-o", "fl.num_ues=4", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "held.txt").read_text() == "kept" * 1000
    with (out / "rounds.csv").open(newline="") as f:
        assert [int(r["round"]) for r in csv.DictReader(f)] == [0, 1]
    assert Path(str(out) + ".atexit").read_text() == "ran"


def test_an_input_error_still_exits_with_status_2(tmp_path: Path) -> None:
    proc = _run(tmp_path, "run", "-q", "-o", "fl.rounds=-1", "--out", str(tmp_path / "bad"))
    assert proc.returncode == 2
    assert "fedwave: error:" in proc.stderr and "Traceback" not in proc.stderr
    assert (tmp_path / "held.txt").read_text() == "kept" * 1000
    assert Path(str(tmp_path / "bad") + ".atexit").read_text() == "ran"


def test_a_compressed_file_left_open_is_still_closed_properly(tmp_path: Path) -> None:
    """gzip writes its trailer only on close: with such a writer open the ordinary exit is taken."""
    import gzip

    code = (
        "import gzip, sys; import fedwave.cli as cli; "
        "g = gzip.open(sys.argv[1], 'wt'); g.write('kept' * 1000); "
        "sys.argv = ['fedwave', 'codecs']; cli.entry()"
    )
    target = tmp_path / "held.gz"
    proc = _python(code, target)
    assert proc.returncode == 0, proc.stderr
    with gzip.open(target, "rt") as f:
        assert f.read() == "kept" * 1000


def test_open_files_of_derived_classes_are_found_too(tmp_path: Path) -> None:
    """A subclass of gzip's writer left open still takes the ordinary exit (its trailer is written), and
    a subclass of a buffered file left unflushed still keeps its bytes."""
    import gzip

    code = (
        "import gzip, io, sys; import fedwave.cli as cli\n"
        "class Gz(gzip.GzipFile): pass\n"
        "class Buf(io.BufferedWriter): pass\n"
        "g = Gz(sys.argv[1], 'wb'); g.write(b'kept' * 1000)\n"
        "b = Buf(io.FileIO(sys.argv[2], 'w')); b.write(b'held' * 1000)\n"
        "sys.argv = ['fedwave', 'codecs']; cli.entry()\n"
    )
    gz, raw = tmp_path / "held.gz", tmp_path / "held.bin"
    proc = _python(code, gz, raw)
    assert proc.returncode == 0, proc.stderr
    with gzip.open(gz, "rb") as f:
        assert f.read() == b"kept" * 1000
    assert raw.read_bytes() == b"held" * 1000
    # without the gzip writer the quick exit is taken, and the derived buffered file is flushed by it
    quick = code.replace("g = Gz(sys.argv[1], 'wb'); g.write(b'kept' * 1000)\n", "")
    raw.unlink()
    proc = _python(quick, gz, raw)
    assert proc.returncode == 0, proc.stderr
    assert raw.read_bytes() == b"held" * 1000
