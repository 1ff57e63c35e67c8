"""Models stage: a registry of networks whose post-ReLU unit layers are named.

    from selectivity.models import create_model, list_models
    model = create_model("resnet20", num_classes=10)
    model.unit_layers          # names of every hidden-layer nn.ReLU, forward order
    model.block_output_layers  # the block-output subset

Importing this package registers every model family below.
"""

from selectivity.models.registry import create_model, list_models, register_model
from selectivity.models import resnet, resnet_cifar, small_cnn, vgg, vit_cifar  # noqa: F401  (registers models)

__all__ = ["create_model", "list_models", "register_model"]
