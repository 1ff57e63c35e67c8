"""Layouts the model itself states: timm's num_prefix_tokens, Hugging Face configs, ConvNeXt blocks.

`model_layouts(model)` gives {module name: UnitLayout} for the modules whose output layout the
model declares; `token_layout_of(model)` the token layout of its [B, N, D] outputs, if any.
Nothing here looks at tensor values: a layout is read from attributes, never guessed.
"""
from torch import nn

from selectivity.capture.layouts import UnitLayout

# Hugging Face text encoders: tokens are the sequence, padding masked out, no prefix skipped
HF_TEXT_MODEL_TYPES = ("bert", "roberta", "distilbert", "albert", "electra", "deberta", "deberta-v2", "xlm-roberta",
                       "camembert", "mpnet", "modernbert")


def token_layout_of(model: nn.Module, tokens: str = "patch_mean") -> UnitLayout | None:
    """The layout of the model's token ([B, N, D]) outputs, from what the model declares, else None.

    timm ViT/DeiT: `num_prefix_tokens` (class + distillation + register tokens). Hugging Face:
    ViT/DeiT image models have one [CLS] token (DeiT's distilled model two); text encoders none
    (their [CLS] is token 0, chosen with tokens="cls"; padding is masked by the attention mask).
    """
    prefix = getattr(model, "num_prefix_tokens", None)
    if isinstance(prefix, int) and not isinstance(prefix, bool):
        return UnitLayout("tokens", tokens, prefix, f"model: timm num_prefix_tokens={prefix}")
    config = getattr(model, "config", None)
    model_type = getattr(config, "model_type", None)
    if model_type in ("vit", "deit", "vit_mae", "dinov2"):
        prefix = 2 if type(model).__name__.startswith("DeiTForImageClassificationWithTeacher") else 1
        prefix += int(getattr(config, "num_register_tokens", 0) or 0)
        return UnitLayout("tokens", tokens, prefix, f"model: Hugging Face {model_type} config ({prefix} prefix)")
    if model_type in HF_TEXT_MODEL_TYPES:
        return UnitLayout("tokens", tokens, 0, f"model: Hugging Face {model_type} config (sequence tokens)")
    return None


def model_layouts(model: nn.Module) -> dict[str, UnitLayout]:
    """{module name: UnitLayout} for modules whose layout follows from the model's module types.

    timm ConvNeXtBlock with conv_mlp=False permutes to [B, H, W, C] around its norm and MLP, so
    `block.norm`, `block.mlp` and everything inside the MLP are channels-last there.
    """
    layouts = {}
    for name, module in model.named_modules():
        if type(module).__name__ == "ConvNeXtBlock" and getattr(module, "use_conv_mlp", True) is False:
            source = "model: timm ConvNeXtBlock(conv_mlp=False)"
            prefix = f"{name}." if name else ""
            for inner in ("norm", "mlp"):
                root = getattr(module, inner, None)
                if root is None:
                    continue
                for sub_name, _ in root.named_modules():
                    layouts[prefix + inner + (f".{sub_name}" if sub_name else "")] = UnitLayout(
                        "channels_last", source=source)
    return layouts
