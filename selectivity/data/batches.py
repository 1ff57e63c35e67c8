"""From stored uint8 images to model input: the one normalisation every stage uses."""
import functools

import torch


def normalize_images(
    images: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...], channels_last: bool = False
) -> torch.Tensor:
    """uint8 [B, C, H, W] in 0..255 -> float32 (x / 255 - mean) / std, per channel.

    Args:
        images: [B, C, H, W] uint8 on any device.
        mean, std: per-channel statistics on the [0, 1] scale (DatasetSplits.mean/std).
        channels_last: return NHWC memory layout (faster convolutions on GPU and oneDNN).
    """
    shift, scale = _shift_and_scale(tuple(mean), tuple(std), images.device)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    return ((images.float() - shift) / scale).contiguous(memory_format=memory_format)


@functools.lru_cache(maxsize=32)
def _shift_and_scale(mean: tuple[float, ...], std: tuple[float, ...], device: torch.device):
    """[1, C, 1, 1] statistics on the 0..255 scale, made once per device: no host-to-device copy per
    batch (which would also break CUDA-graph capture of a training step)."""
    channels = len(mean)
    shift = torch.tensor(mean, device=device, dtype=torch.float32).mul(255.0).reshape(1, channels, 1, 1)
    scale = torch.tensor(std, device=device, dtype=torch.float32).mul(255.0).reshape(1, channels, 1, 1)
    return shift, scale
