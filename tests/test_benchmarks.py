"""Every benchmark script runs at its smallest size on the CPU and prints the JSON it promises.

Speed itself is never asserted (benchmarks/README.md): these only keep the scripts working
as the package under them changes, so a GPU session's one `gpu_check.sh` call is not lost
to an import error.
"""
import functools
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"

SMALLEST = {
    "train_speed": ["--steps", "1", "--warmup", "1", "--repeats", "2", "--workers", "0"],
    "regularizer_overhead": ["--steps", "1", "--warmup", "1", "--repeats", "1", "--batch-size", "16"],
    "measure_speed": ["--images", "64", "--batch-size", "32", "--repeats", "1"],
    "measure_vit": ["--images", "16", "--batch-size", "8", "--repeats", "1"],
    "null_speed": ["--images", "64", "--batch-size", "32", "--repeats", "1", "--shuffles", "2"],
    "sweep_throughput": ["--concurrency", "1", "--seconds", "1", "--warmup", "1"],
    "robustness_cost": ["--images", "8"],
    "measure_imagenet": ["--model", "resnet18", "--images", "12", "--classes", "3", "--batch-size", "6",
                         "--workers", "1", "--shuffles", "2",
                         "--tree", str(Path(tempfile.gettempdir()) / "selectivity-benchmark-tree-12-3")],
}
# what each script's JSON must hold: seconds or ratios that are finite and positive
EXPECTED = {
    "train_speed": ["seconds_per_epoch", "speedup_c_over_a", "ratio_a_over_b", "ratio_a_over_b_per_repeat"],
    "regularizer_overhead": ["seconds_per_step", "ratio_alpha_minus_1_vs_none", "ratio_alpha_0_vs_none",
                             "ratio_alpha_minus_1_vs_alpha_0",
                             "ratio_alpha_0_every_k_vs_none", "ratio_alpha_0_every_k_vs_none_amortized"],
    "measure_speed": ["forward_seconds", "measure_seconds", "ratio"],
    "measure_vit": ["forward_seconds", "measure_seconds", "ratio"],
    "null_speed": ["measure_seconds", "measure_with_nulls_seconds", "ratio"],
    "sweep_throughput": ["images_per_second", "ratio_vs_k1"],
    "robustness_cost": ["seconds_per_1000_images", "ratio_vs_clean_measure", "projected_seconds_per_run_at_defaults"],
    "measure_imagenet": ["measure_over_forward", "measure_shuffles_over_forward"],
}


def positive_numbers(value) -> list[float]:
    if isinstance(value, dict):
        return [n for item in value.values() for n in positive_numbers(item)]
    if isinstance(value, list):
        return [n for item in value for n in positive_numbers(item)]
    return [value] if isinstance(value, (int, float)) and not isinstance(value, bool) else []


def cpuinfo_flags_and_model() -> tuple[set[str], str]:
    text = Path("/proc/cpuinfo").read_text()
    fields = {key.strip(): value.strip() for key, value in
              (line.split(":", 1) for line in text.splitlines() if ":" in line)}  # the last CPU's; all match
    return set(fields["flags"].split()), fields["model name"]


def run_script(name: str, *arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BENCHMARKS / f"{name}.py"), *arguments],
                          capture_output=True, text=True, timeout=300)


@functools.lru_cache(maxsize=None)
def run_benchmark(name: str, *arguments: str) -> dict:
    """The JSON of `name` run on the CPU with `arguments` (default: its smallest size); once per test session."""
    finished = run_script(name, "--device", "cpu", *(arguments or SMALLEST[name]))
    assert finished.returncode == 0, finished.stderr[-2000:]
    return json.loads(finished.stdout)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SMALLEST))
def test_benchmark_runs_on_cpu_and_prints_one_json_object(name):
    result = run_benchmark(name)
    assert result["benchmark"] == name
    assert result["device"] == "cpu"
    # the CPU model and its bf16 support, read here independently, so figures of different CPUs are told apart
    flags, model = cpuinfo_flags_and_model()
    assert result["cpu_model"] == model
    assert result["cpu_bf16"] == ("amx" if "amx_bf16" in flags else "avx512_bf16" if "avx512_bf16" in flags else "none")
    assert result["threads"] >= 1 and result["torch"]
    for key in EXPECTED[name]:
        numbers = positive_numbers(result[key])
        assert numbers and all(math.isfinite(n) and n > 0 for n in numbers), (key, result[key])


@pytest.mark.slow
def test_train_speed_takes_another_workload():
    result = run_benchmark("train_speed", "--model", "small_cnn", "--image-size", "12", "--classes", "3",
                           "--batch-size", "8", "--epoch-images", "80", "--steps", "1", "--warmup", "1",
                           "--repeats", "1", "--workers", "0")
    assert (result["model"], result["classes"], result["image_size"], result["batch_size"]) == ("small_cnn", 3, 12, 8)
    assert result["epoch_images"] == 80 and all(s > 0 for s in result["seconds_per_epoch"].values())


def test_train_speed_refuses_cifar_data_for_another_workload(tmp_path):
    finished = run_script("train_speed", "--data-root", str(tmp_path), "--classes", "200")
    assert finished.returncode == 2 and "--data-root is CIFAR-10" in finished.stderr


@pytest.mark.slow
def test_train_speed_times_both_trainers_once_per_repeat():
    result = run_benchmark("train_speed")
    assert len(result["ratio_a_over_b_per_repeat"]) == 2 == result["repeats"]
    assert set(result["seconds_per_epoch"]) == {"a_trainer_alpha_-1", "b_trainer_alpha_0", "c_standard_loop"}


def test_gpu_check_script_parses():
    finished = subprocess.run(["bash", "-n", str(BENCHMARKS / "gpu_check.sh")], capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr


@pytest.mark.slow
def test_regularizer_overhead_names_its_every_k_variant():
    result = run_benchmark("regularizer_overhead", *SMALLEST["regularizer_overhead"], "--track-every", "3")
    assert list(result["seconds_per_step"]) == ["none", "alpha=0", "alpha=0,every=3", "alpha=-1"]
    assert result["track_every"] == 3
    every, measured = result["seconds_per_step"]["alpha=0,every=3"], result["seconds_per_step"]["alpha=0"]
    amortized = (2 * every + measured) / 3 / result["seconds_per_step"]["none"]
    assert result["ratio_alpha_0_every_k_vs_none_amortized"] == pytest.approx(amortized, rel=1e-2)


@pytest.mark.slow
def test_regularizer_overhead_takes_the_vit():
    result = run_benchmark("regularizer_overhead", *SMALLEST["regularizer_overhead"], "--model", "vit_cifar")
    assert result["model"] == "vit_cifar"
    seconds = result["seconds_per_step"]
    assert result["ratio_alpha_minus_1_vs_alpha_0"] == pytest.approx(seconds["alpha=-1"] / seconds["alpha=0"], rel=1e-2)
