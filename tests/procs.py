"""Helpers for tests that run the CLI as a real child process."""
import sys
import time
from pathlib import Path

from ace_neuro.synthetic.project import write_demo_project


def long_demo(folder: Path):
    """One line long enough (600 frames of 96 x 96 px) to signal or race a run while motion correction runs."""
    return write_demo_project(folder, lines=[96], height=96, width=96, n_frames=600, frames_per_file=200, seed=2)


def cli_args(demo, out: Path, *extra: str) -> list[str]:
    """``python -m`` the lab's CLI, headless, on line 96 of ``demo``, outputs under ``out``."""
    return [sys.executable, "-m", "ace_neuro.pipelines.miniscope", "--line-num", "96", "--project-path",
            str(demo.project_path), "--data-path", str(demo.data_path), "--storage-root", str(out), "--headless",
            *extra]


def wait_for_text(log_path: Path, text: str, child, *, timeout_s: float = 120) -> None:
    """Wait until ``text`` appears in the child's log; fail if it exits or the time runs out first."""
    deadline = time.monotonic() + timeout_s
    while text not in log_path.read_text():
        assert child.poll() is None and time.monotonic() < deadline, log_path.read_text()
        time.sleep(0.1)
