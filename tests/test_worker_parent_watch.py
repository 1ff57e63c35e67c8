"""A sweep worker watches the driver whose pid it was given, not whoever its parent is when it starts."""
import multiprocessing
import time

from selectivity.sweep import executors


def _start_worker_then_sleep(driver: int) -> None:
    executors._worker_init(driver)
    try:
        time.sleep(120)
    except KeyboardInterrupt:  # the watch's SIGTERM, as a run sees it
        raise SystemExit(3)


def test_a_worker_whose_driver_is_already_gone_exits():
    """A worker still starting when its driver was killed has been re-parented already: its
    getppid() is not the driver, and the watch must see that at once (with the driver's pid
    taken from getppid() inside the worker it would wait forever)."""
    context = multiprocessing.get_context("spawn")
    worker = context.Process(target=_start_worker_then_sleep, args=(2**22 + 12345,))  # no such parent
    worker.start()
    worker.join(timeout=60)  # a hang guard: the watch polls once a second
    alive = worker.is_alive()
    if alive:
        worker.kill()
    assert not alive and worker.exitcode in (0, 3)  # exit 0: no run was in progress
