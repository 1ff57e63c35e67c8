"""A writer killed mid-write leaves the old file or the new one, never part of one; of many
claimers racing for one run exactly one wins, even where the claim lock is not shared."""
import os
import random
import signal
import time

import numpy as np
import pandas as pd
import torch

from selectivity import atomic
from selectivity.train.checkpoint import save_checkpoint

KILLS = 20
ROWS = 400_000


def versions() -> tuple[list[pd.DataFrame], list[torch.nn.Module]]:
    """Two tables and two models, each a few MB, told apart by one value."""
    tables = [pd.DataFrame({"version": np.full(ROWS, v), "value": np.random.default_rng(v).random(ROWS)})
              for v in (0, 1)]
    models = []
    for v in (0, 1):
        model = torch.nn.Linear(700, 700)
        torch.nn.init.constant_(model.bias, float(v))
        models.append(model)
    return tables, models


def write_until_killed(folder, tables, models) -> None:  # in a forked child; never returns
    try:
        for index in range(10**9):
            atomic.write_table(folder / "results.parquet", tables[index % 2])
            model = models[index % 2]
            optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
            save_checkpoint(folder / "checkpoint.pt", model, optimizer, torch.Generator(), index, index)
    finally:
        os._exit(1)


def check_whole(folder) -> int:
    """How many of the two files exist; each that does must be one whole version."""
    present = 0
    if (folder / "results.parquet").exists():
        table = pd.read_parquet(folder / "results.parquet")
        assert len(table) == ROWS and table["version"].nunique() == 1
        present += 1
    if (folder / "checkpoint.pt").exists():
        bias = torch.load(folder / "checkpoint.pt", weights_only=True)["model"]["bias"]
        assert bias.unique().tolist() in ([0.0], [1.0])
        present += 1
    return present


def test_a_writer_killed_at_random_points_leaves_whole_files(tmp_path):
    tables, models = versions()
    rng = random.Random(0)
    present = []
    for _ in range(KILLS):
        pid = os.fork()
        if pid == 0:
            write_until_killed(tmp_path, tables, models)
        time.sleep(rng.uniform(0.05, 0.6))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        present.append(check_whole(tmp_path))
    assert present[-1] == 2, present  # the writer did write both files
