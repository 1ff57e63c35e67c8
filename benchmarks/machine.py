"""What machine a benchmark ran on, in every benchmark's JSON.

Figures from different CPUs must never be compared as if equal: the regularizer's share of
a step grows as convolutions get faster (an AMX Xeon's bf16 units vs an EPYC's AVX512-BF16
vs plain AVX2 in fp32), so each JSON names the CPU model and its bf16 support.
"""
import os

import torch

from selectivity.setup import cpu_bf16_support, cpu_model


def describe_machine(device: torch.device | str) -> dict:
    """{"device", "cpu_model", "cpu_bf16", "cpu_capability", "cores", "threads", "torch"} for the JSON."""
    device = torch.device(device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    return {
        "device": name,
        "cpu_model": cpu_model(),
        "cpu_bf16": cpu_bf16_support(),  # "amx", "avx512_bf16" or "none"
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),  # the kernels torch picked: AVX2, AVX512, ...
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }
