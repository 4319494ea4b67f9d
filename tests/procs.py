"""Helpers for tests that run the CLI as a real child process."""
import time
from pathlib import Path


def wait_for_text(log_path: Path, text: str, child, *, timeout_s: float = 120) -> None:
    """Wait until ``text`` appears in the child's log; fail if it exits or the time runs out first."""
    deadline = time.monotonic() + timeout_s
    while text not in log_path.read_text():
        assert child.poll() is None and time.monotonic() < deadline, log_path.read_text()
        time.sleep(0.1)
