"""The realistic benchmark's ``--against REV``: a checkout of another revision that never outlives the run."""
import subprocess
import sys

import pytest

from bench.realistic import runner

pytestmark = pytest.mark.skipif(not (runner.REPO / ".git").exists(), reason="needs a git checkout of this project")


def _worktrees() -> str:
    return subprocess.run(["git", "worktree", "list", "--porcelain"], cwd=runner.REPO, capture_output=True,
                          text=True, check=True).stdout


def test_a_revision_is_checked_out_once_and_removed(tmp_path):
    tree = runner.checkout_revision("HEAD", tmp_path)
    assert (tree / "ace_neuro" / "__init__.py").is_file() and str(tree) in _worktrees()
    assert runner.checkout_revision("HEAD", tmp_path) == tree  # reused, not made again
    runner.remove_checkout(tree)
    assert not tree.exists() and str(tree) not in _worktrees()


def test_an_unknown_revision_is_named_in_the_error(tmp_path):
    with pytest.raises(SystemExit, match="--against 'no-such-rev': not a commit"):
        runner.checkout_revision("no-such-rev", tmp_path)


def test_a_run_that_fails_leaves_no_worktree_behind(tmp_path, monkeypatch):
    def fail(*args, **kwargs):
        raise RuntimeError("the CLI child was killed")

    monkeypatch.setattr(runner, "ensure_generated", lambda recordings, cache, python: {})
    monkeypatch.setattr(runner, "minisim_version", lambda python: "1.0.3")
    monkeypatch.setattr(runner, "run_lines", fail)
    with pytest.raises(RuntimeError, match="killed"):
        runner.main(["--only", "ca1_200_1min", "--against", "HEAD", "--out", str(tmp_path),
                     "--minisim-python", sys.executable])
    assert str(tmp_path) not in _worktrees()
    assert not any((tmp_path / "against").iterdir())
