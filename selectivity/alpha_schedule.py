"""alpha as a number or a per-epoch schedule: "0x5,-20" = 0 for 5 epochs, then -20."""
import math

from selectivity.errors import SelectivityError

FLOAT32_MAX = 3.4028234663852886e38  # alpha becomes a float32 tensor in the loss: beyond this it is inf


def parse_alpha(alpha: float | str) -> list[tuple[float, int | None]]:
    """[(value, epochs or None for 'until the end')] for a number or a schedule string.

    Every value must be finite: a NaN or infinite alpha would turn every loss into NaN.
    """
    if isinstance(alpha, (int, float)) and not isinstance(alpha, bool):
        if not math.isfinite(alpha):
            raise SelectivityError(f"alpha = {alpha!r} is not finite; expected a finite number or schedule")
        if abs(alpha) > FLOAT32_MAX:
            raise SelectivityError(f"alpha = {alpha!r} is not a finite float32; expected a number within +-3.4e38")
        return [(float(alpha), None)]
    if not isinstance(alpha, str):
        raise SelectivityError(f"alpha = {alpha!r}; expected a number or a schedule string such as '0x5,-20'")
    segments = []
    parts = [p.strip() for p in str(alpha).split(",")]
    for index, part in enumerate(parts):
        value, _, epochs = part.partition("x")
        try:
            segment = (float(value), int(epochs) if epochs else None)
        except ValueError:
            segment = None
        last = index == len(parts) - 1
        if segment is None or (segment[1] is None and not last) or (segment[1] is not None and segment[1] < 1):
            raise SelectivityError(
                f"alpha schedule {alpha!r} is malformed at {part!r}; expected a number or segments "
                "VALUExEPOCHS separated by commas, the last may omit xEPOCHS (e.g. '0x5,-20')"
            )
        if not math.isfinite(segment[0]) or abs(segment[0]) > FLOAT32_MAX:
            raise SelectivityError(f"alpha schedule {alpha!r} has the value {part!r}; expected finite values within +-3.4e38 (float32)")
        segments.append(segment)
    return segments


def alpha_at_epoch(alpha: float | str, epoch: int) -> float:
    """alpha for a 0-based epoch; after the schedule's counted segments, the last value holds."""
    start = 0
    segments = parse_alpha(alpha)
    for value, epochs in segments:
        if epochs is None or epoch < start + epochs:
            return value
        start += epochs
    return segments[-1][0]
