"""Run claims: a worker claims a run folder before it trains, so no two workers run it at once.

    <run folder>/claim.json   {"host", "pid", "process_start", "started", "token"}; its mtime
                              is the heartbeat, refreshed while the run trains
    <run folder>/claim.lock   an flock() held for the few microseconds of a claim, steal or
                              release; never deleted (deleting lock files reintroduces races)

A claim is created with os.open(O_CREAT | O_EXCL), so of two racing workers exactly one
wins. A claim is *stale* (its worker is gone) when its pid no longer runs on this host (or
runs a different process: pids are reused), or when its heartbeat is older than
`stale_after` seconds (the only test that works across hosts). A stale claim is taken over
under the lock, so two workers that both see it stale cannot both take it.
"""
import fcntl
import json
import os
import socket
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

CLAIM_FILE = "claim.json"
LOCK_FILE = "claim.lock"
DEFAULT_STALE_AFTER = 600.0  # seconds without a heartbeat before a claim from another host is stale


class ClaimLost(RuntimeError):
    """Our claim was taken over (we looked dead to another worker): stop writing to the run."""


def _process_start_time(pid: int) -> str | None:
    """The kernel's start time of `pid` (Linux /proc), which tells a reused pid apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # the command name may hold spaces and ')'
    return fields[19] if len(fields) > 19 else None  # field 22 of stat(5): starttime


def _pid_is_running(pid: int, process_start: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        if state in ("Z", "X"):  # a killed child nobody has reaped yet is not running
            return False
    except OSError:
        pass
    current_start = _process_start_time(pid)
    return process_start is None or current_start is None or current_start == process_start


def read_claim(run_dir: str | Path) -> dict | None:
    """The claim on `run_dir` with its heartbeat age in "age" (seconds), or None if unclaimed.

    A claim whose content is not yet written (the instant after O_EXCL) reads as {"age": ...}.
    """
    path = Path(run_dir) / CLAIM_FILE
    try:
        age = time.time() - path.stat().st_mtime
        text = path.read_text()
    except FileNotFoundError:
        return None
    try:
        claim = json.loads(text)
    except json.JSONDecodeError:
        claim = {}
    claim["age"] = age
    return claim


def claim_is_stale(claim: dict, stale_after: float = DEFAULT_STALE_AFTER) -> bool:
    """True when the claim's worker is gone: dead pid on this host, or no recent heartbeat."""
    if claim["age"] > stale_after:
        return True
    if claim.get("host") == socket.gethostname() and "pid" in claim:
        return not _pid_is_running(int(claim["pid"]), claim.get("process_start"))
    return False  # fresh heartbeat from another host, or still being written


@contextmanager
def _locked(run_dir: Path) -> Iterator[None]:
    run_dir.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(run_dir / LOCK_FILE, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)  # released by the kernel even if we are killed
        yield
    finally:
        os.close(descriptor)


class Claim:
    """A claim we hold on one run folder. Release it when done (or use it as a context manager)."""

    def __init__(self, run_dir: Path, token: str):
        self.run_dir, self.token = Path(run_dir), token
        self.path = self.run_dir / CLAIM_FILE

    def is_held(self) -> bool:
        claim = read_claim(self.run_dir)
        return claim is not None and claim.get("token") == self.token

    def refresh(self) -> None:
        """Heartbeat: touch the claim's mtime. Raises ClaimLost if another worker took it."""
        with _locked(self.run_dir):
            if not self.is_held():
                raise ClaimLost(f"the claim on {self.run_dir} was taken over by another worker")
            os.utime(self.path)

    def release(self) -> None:
        """Remove the claim if it is still ours (a taken-over claim belongs to its new owner)."""
        with _locked(self.run_dir):
            if self.is_held():
                self.path.unlink()

    @contextmanager
    def kept_alive(self, interval: float) -> Iterator[Callable[[], None]]:
        """Refresh the heartbeat every `interval` s from a thread while the body runs; release after.

        Yields a `heartbeat()` for the trainer: it refreshes too, and raises ClaimLost once the
        claim was taken over, so a worker that only looked dead stops before writing more.
        """
        stop, lost = threading.Event(), threading.Event()

        def beat_until_stopped():
            while not stop.wait(interval):
                try:
                    self.refresh()
                except ClaimLost:
                    lost.set()
                    return

        def heartbeat():
            if lost.is_set():
                raise ClaimLost(f"the claim on {self.run_dir} was taken over by another worker")
            self.refresh()

        thread = threading.Thread(target=beat_until_stopped, name=f"heartbeat {self.run_dir.name}", daemon=True)
        thread.start()
        try:
            yield heartbeat
        finally:
            stop.set()
            thread.join()
            self.release()


def try_claim(run_dir: str | Path, stale_after: float = DEFAULT_STALE_AFTER) -> Claim | None:
    """Claim `run_dir` for this process, taking over a stale claim.

    Args:
        run_dir: the run folder (created if missing).
        stale_after: heartbeat age in seconds after which any claim counts as abandoned.
    Returns:
        The Claim, or None when another live worker holds the run.
    """
    run_dir = Path(run_dir)
    token = uuid.uuid4().hex
    record = {"host": socket.gethostname(), "pid": os.getpid(), "process_start": _process_start_time(os.getpid()),
              "started": time.time(), "token": token}
    with _locked(run_dir):
        existing = read_claim(run_dir)
        if existing is not None:
            if not claim_is_stale(existing, stale_after):
                return None
            (run_dir / CLAIM_FILE).unlink(missing_ok=True)
        try:
            descriptor = os.open(run_dir / CLAIM_FILE, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:  # a worker on another host (not honouring our lock) won the race
            return None
        with os.fdopen(descriptor, "w") as claim_file:
            json.dump(record, claim_file)
            claim_file.flush()
            os.fsync(claim_file.fileno())
    return Claim(run_dir, token)
