"""From stored uint8 images to model input: the one normalisation every stage uses."""
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
    channels = images.shape[1]
    scale = torch.tensor(std, device=images.device, dtype=torch.float32).mul(255.0).reshape(1, channels, 1, 1)
    shift = torch.tensor(mean, device=images.device, dtype=torch.float32).mul(255.0).reshape(1, channels, 1, 1)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    return ((images.float() - shift) / scale).contiguous(memory_format=memory_format)
