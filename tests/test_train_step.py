"""TrainStep: the graph path's bookkeeping (checked on the CPU with a stand-in for CUDA graphs) and,
where a GPU exists, real CUDA graphs against eager steps."""
import dataclasses
import traceback

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from selectivity.config import ExperimentConfig, RegularizerSettings, TrainSettings, config_from_dict
from selectivity.data import load_dataset
from selectivity.errors import SelectivityError
from selectivity.regularizer import SelectivityRegularizer
from selectivity.store import RunDirectory
from selectivity.train import train_run
from selectivity.train.augment import draw_epoch_randomness
from selectivity.train.epoch import train_epoch
from selectivity.train.loop import make_optimizer
from selectivity.setup import build_model
from selectivity.train.step import WARMUP_STEPS, TrainStep, epoch_plan


class RecordedStep:
    """CPU stand-in for a CUDA graph: recording runs nothing; a replay reruns the step on the buffer it
    was recorded with. A TrainStep that fed a graph anything but that buffer would train on stale batches."""

    captures = 0

    def __init__(self, step, buffer):
        self.step, self.buffer = step, buffer
        RecordedStep.captures += 1

    def replay(self):
        self.step(self.buffer)


# ops that make the host wait for the device (item(), bool(tensor), data-dependent shapes) or copy
# from host memory (torch.tensor(data): lift_fresh): inside a CUDA graph capture they raise, and in
# an eager CUDA step they stall the pipeline
HOST_SYNC_OPS = {"_local_scalar_dense", "is_nonzero", "nonzero", "equal", "unique", "_unique2", "unique_consecutive",
                 "masked_select", "repeat_interleave", "lift_fresh"}


class HostSyncs(TorchDispatchMode):
    """Records every host-synchronising op dispatched inside it, with the selectivity line that caused it."""

    def __init__(self):
        super().__init__()
        self.found: list[tuple[str, str]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.__name__.split(".")[0]
        if name == "index" and any(i is not None and i.dtype == torch.bool for i in args[1]):
            name = "index with a boolean mask"  # its nonzero runs inside the CPU kernel, unseen by this mode
        if name in HOST_SYNC_OPS or name.startswith("index with"):
            ours = [frame for frame in traceback.extract_stack() if "/selectivity/" in frame.filename]
            self.found.append((name, f"{ours[-1].filename}:{ours[-1].lineno}: {ours[-1].line}" if ours else "?"))
        return func(*args, **(kwargs or {}))

    def unexpected(self) -> list[tuple[str, str]]:
        # one_hot checks its labels' range with two item() calls on the CPU only; on CUDA it leaves
        # that to scatter's device-side assert (ATen Onehot.cpp), so a captured step makes no sync there
        return [(name, where) for name, where in self.found if "one_hot(" not in where]


class SyncCheckedStep(RecordedStep):
    """RecordedStep whose replays record host syncs: what a CUDA graph would capture must have none."""

    syncs = HostSyncs()

    def replay(self):
        with SyncCheckedStep.syncs:
            self.step(self.buffer)


def train_digits(cuda_graphs: bool, epochs: int = 2, batch_size: int = 100, alpha: float = -1.0,
                 capture=RecordedStep, fused_sgd: bool = False):
    """Parameters and per-epoch totals after training small_cnn on digits (1,347 images: the last batch is short)."""
    torch.manual_seed(0)
    data = load_dataset("digits")
    config = ExperimentConfig(data=dataclasses.replace(ExperimentConfig().data, crop_padding=1, flip=True),
                              train=TrainSettings(epochs=epochs, batch_size=batch_size, lr=0.05), device="cpu")
    model = build_model(config, data).to(memory_format=torch.channels_last)
    optimizer = make_optimizer(model, config, torch.device("cpu"), fused=fused_sgd)
    regularizer = SelectivityRegularizer(torch.tensor(alpha) if alpha else 0.0, data.num_classes)
    generator = torch.Generator().manual_seed(0)
    totals, step = [], 0
    with regularizer.attach(model):
        stepper = TrainStep(model, optimizer, regularizer, data, data.train.images, data.train.labels, config,
                            use_bf16=False, cuda_graphs=cuda_graphs, capture=capture)
        for _ in range(epochs):
            randomness = draw_epoch_randomness(generator, len(data.train.labels), 1, True)
            epoch_totals, steps = train_epoch(stepper, epoch_plan(randomness), config, step, False, "test")
            step += steps
            totals.append({"loss": float(epoch_totals.loss), "si": float(epoch_totals.selectivity),
                           "correct": int(epoch_totals.correct), "batches": epoch_totals.batches,
                           "images": epoch_totals.images})
    return {name: p.detach().clone() for name, p in model.named_parameters()}, totals, optimizer


def test_replayed_steps_train_exactly_like_eager_steps():
    RecordedStep.captures = 0
    eager_parameters, eager_totals, _ = train_digits(cuda_graphs=False, epochs=5)
    graph_parameters, graph_totals, optimizer = train_digits(cuda_graphs=True, epochs=5)
    # one capture per batch size: 100 (in epoch 1) and the last batch's 47 (epoch 4, after 3 eager steps)
    assert RecordedStep.captures == 2
    assert [t["images"] for t in graph_totals] == [1347] * 5 and [t["batches"] for t in graph_totals] == [14] * 5
    for eager, graphed in zip(eager_totals, graph_totals):
        assert graphed["correct"] == eager["correct"] and graphed["batches"] == eager["batches"]
        assert graphed["loss"] == pytest.approx(eager["loss"], rel=1e-5)  # lr is a float32 tensor, not a float
        assert graphed["si"] == pytest.approx(eager["si"], rel=1e-5)
    for name, value in eager_parameters.items():
        torch.testing.assert_close(graph_parameters[name], value, rtol=1e-4, atol=1e-6, msg=name)
    assert isinstance(optimizer.param_groups[0]["lr"], torch.Tensor)  # what a graph reads


def test_each_batch_size_runs_eagerly_before_it_is_captured():
    RecordedStep.captures = 0
    train_digits(cuda_graphs=True, epochs=1, batch_size=100)
    # 13 full batches: WARMUP_STEPS eager, then one capture; the short batch appears once (eager)
    assert 13 > WARMUP_STEPS and RecordedStep.captures == 1


@pytest.mark.parametrize("alpha", [-1.0, 0.0])  # a device-tensor alpha, and plain training that logs mu_SI
def test_a_captured_step_makes_no_host_sync(alpha):
    SyncCheckedStep.syncs = HostSyncs()
    # fused SGD as on CUDA: the CPU's default SGD reads a tensor lr with item()
    train_digits(cuda_graphs=True, epochs=1, batch_size=100, alpha=alpha, capture=SyncCheckedStep, fused_sgd=True)
    assert SyncCheckedStep.syncs.found, "the step never ran under the sync check"  # one_hot's CPU checks at least
    assert SyncCheckedStep.syncs.unexpected() == []


def test_the_sync_check_sees_an_item_call():
    syncs = HostSyncs()
    with syncs:
        float(torch.ones(2).sum())
        mask = torch.tensor([True, False, True, False])  # from host data
        torch.arange(4)[mask]  # boolean mask: data-dependent shape
    assert [name for name, _ in syncs.found] == ["_local_scalar_dense", "lift_fresh", "index with a boolean mask"]


def test_epoch_plan_lists_each_image_once_with_its_own_augmentation():
    randomness = draw_epoch_randomness(torch.Generator().manual_seed(3), 50, 4, True)
    plan = epoch_plan(randomness)
    assert plan.shape == (4, 50) and plan.dtype == torch.int64
    assert sorted(plan[0].tolist()) == list(range(50))
    image = plan[0, 7]
    assert plan[1, 7] == randomness.row_offsets[image] and plan[2, 7] == randomness.column_offsets[image]
    assert bool(plan[3, 7]) == bool(randomness.flips[image])


def test_cuda_graphs_on_cpu_data_is_a_one_line_error():
    data = load_dataset("digits")
    config = ExperimentConfig(device="cpu")
    model = build_model(config, data)
    with pytest.raises(SelectivityError, match="cuda_graphs needs the training data on a CUDA device; it is on cpu"):
        TrainStep(model, make_optimizer(model, config, torch.device("cpu")), SelectivityRegularizer(0.0, 10), data,
                  data.train.images, data.train.labels, config, use_bf16=False, cuda_graphs=True)


def test_cuda_graphs_with_logging_every_kth_step_is_a_one_line_error():
    """A replay repeats the captured step, measuring or not; an active regularizer measures every step anyway."""
    data = load_dataset("digits")
    config = ExperimentConfig(device="cpu")
    model = build_model(config, data)

    def stepper(regularizer):
        return TrainStep(model, make_optimizer(model, config, torch.device("cpu")), regularizer, data,
                         data.train.images, data.train.labels, config, use_bf16=False, cuda_graphs=True,
                         capture=RecordedStep)

    with pytest.raises(SelectivityError, match="cuda_graphs with the regularizer measuring every 4 steps; "
                                               "expected track_every = 1 with CUDA graphs") as error:
        stepper(SelectivityRegularizer(0.0, 10, track_every=4))
    assert "\n" not in str(error.value)
    stepper(SelectivityRegularizer(torch.tensor(-1.0), 10, track_every=4))
    stepper(SelectivityRegularizer(0.0, 10, track_every=1))


def test_compile_and_cuda_graphs_together_is_a_one_line_error():
    with pytest.raises(SelectivityError, match="train.compile and train.cuda_graphs"):
        config_from_dict({"train": {"compile": True, "cuda_graphs": True}})


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_graph_runs_match_eager_runs_on_a_gpu(tmp_path):
    """A real capture: alpha changes by schedule and lr every step, both read from device tensors."""
    results = {}
    for graphs in (False, True):
        config = ExperimentConfig(train=TrainSettings(epochs=3, batch_size=100, cuda_graphs=graphs, precision="fp32"),
                                  regularizer=RegularizerSettings(alpha="-1x1,0x1,-2"), device="cuda")
        train_run(config, tmp_path / str(graphs), progress=False)
        results[graphs] = RunDirectory(tmp_path / str(graphs)).read_metrics()
    for eager, graphed in zip(results[False], results[True]):
        assert graphed["alpha"] == eager["alpha"] and graphed["lr"] == pytest.approx(eager["lr"], abs=1e-7)
        assert graphed["train_loss"] == pytest.approx(eager["train_loss"], rel=2e-2)
        assert graphed["train_batch_si"] == pytest.approx(eager["train_batch_si"], rel=2e-2)
        assert graphed["test_accuracy"] == pytest.approx(eager["test_accuracy"], abs=0.03)
