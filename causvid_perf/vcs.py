"""git, as far as the suite uses it: the commit and branch a run is measured on, and the revisions
that `compare --a-rev/--b-rev` and `bisect` check out into throwaway worktrees."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

from causvid_perf.errors import GitError

GIT_TIMEOUT_S = 60
BRANCH_ENV = "CAUSVID_PERF_BRANCH"  # names the branch where git cannot (a detached CI checkout)
# What CI systems set when they check out a detached commit (GitHub: the PR's head, else the ref).
CI_BRANCH_ENVS = ("GITHUB_HEAD_REF", "GITHUB_REF_NAME", "CI_COMMIT_REF_NAME")


def git(args: list[str], cwd: str | os.PathLike | None = None) -> str:
    """stdout of `git ARGS` in `cwd`, stripped; GitError (one line, git's own first line) when it fails."""
    try:
        done = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=GIT_TIMEOUT_S, check=False
        )
    except FileNotFoundError:
        raise GitError("git is not installed or not on PATH; install git to compare revisions") from None
    except subprocess.TimeoutExpired:
        raise GitError(
            f"`git {' '.join(args)}` took over {GIT_TIMEOUT_S} s in {cwd or '.'}; check the repository"
        ) from None
    if done.returncode != 0:
        first = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[0]
        raise GitError(f"`git {' '.join(args)}` failed in {cwd or '.'}: {first}")
    return done.stdout.strip()


def current_commit(cwd: str | os.PathLike | None = None) -> str:
    """Short commit of the checkout ("unknown" outside git); '+dirty' when files are modified."""
    try:
        commit = git(["rev-parse", "--short=12", "HEAD"], cwd)
        dirty = git(["status", "--porcelain", "--untracked-files=no"], cwd)
    except GitError:
        return "unknown"
    return commit + ("+dirty" if dirty else "")


def current_branch(cwd: str | os.PathLike | None = None) -> str:
    """The checked-out branch: $CAUSVID_PERF_BRANCH, else git's, else the CI's; "" when none is known
    (a detached HEAD outside CI, or no git)."""
    named = os.environ.get(BRANCH_ENV)
    if named:
        return named
    try:
        branch = git(["rev-parse", "--abbrev-ref", "HEAD"], cwd)
    except GitError:
        branch = ""
    if branch and branch != "HEAD":
        return branch
    return next((os.environ[name] for name in CI_BRANCH_ENVS if os.environ.get(name)), "")


def toplevel(path: str | os.PathLike) -> Path:
    """The root of the repository that holds `path`."""
    if not Path(path).is_dir():
        raise GitError(f"{path} is not a folder; --repo must name a git checkout")
    try:
        return Path(git(["rev-parse", "--show-toplevel"], path))
    except GitError:
        raise GitError(f"{path} is not inside a git repository; pass --repo PATH of a git checkout") from None


def resolve(repo: Path, rev: str) -> str:
    """The full commit id a revision (a branch, tag, HEAD~2, a sha) names in `repo`."""
    if not rev or rev.startswith("-"):
        raise GitError(f"{rev!r} is not a revision; give a commit, branch or tag such as HEAD~1")
    try:
        return git(["rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], repo)
    except GitError:
        raise GitError(f"{repo} has no revision {rev!r}; check it with `git -C {repo} log --oneline`") from None


def subject(repo: Path, commit: str) -> str:
    """The first line of a commit's message."""
    return git(["log", "-1", "--format=%s", commit], repo)


def commits_between(repo: Path, good: str, bad: str) -> list[tuple[str, str]]:
    """(commit, subject) of the commits after `good` up to and including `bad`, oldest first (bad's
    ancestry path from good)."""
    try:
        git(["merge-base", "--is-ancestor", good, bad], repo)
    except GitError:
        raise GitError(
            f"{good[:12]} is not an ancestor of {bad[:12]} in {repo}; --good must be older than --bad on one line of history"
        ) from None
    listed = git(["log", "--reverse", "--ancestry-path", "--format=%H%x09%s", f"{good}..{bad}"], repo)
    return [(line.partition("\t")[0], line.partition("\t")[2]) for line in listed.splitlines() if line]


@contextlib.contextmanager
def worktree(repo: Path, commit: str, path: Path) -> Iterator[Path]:
    """A detached checkout of `commit` at `path`, removed (with git's record of it) on the way out."""
    git(["worktree", "add", "--detach", "--force", str(path), commit], repo)
    try:
        yield path
    finally:
        with contextlib.suppress(GitError):
            git(["worktree", "remove", "--force", str(path)], repo)
        with contextlib.suppress(GitError):
            git(["worktree", "prune"], repo)
