"""
The part-crop CNN (PyTorch): a small conv stack with three heads (condition, color, shape).

Sized for 2 CPU cores and a Jetson: about 20 MFLOPs per 64x64 crop. Used by training,
export and the benchmark; the runtime only ever sees the exported ONNX file.
"""

from typing import Dict, Sequence, Tuple

import torch
from torch import nn


def _block(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class PartNet(nn.Module):
    """
    Conv stack -> global average pool -> three linear heads.

    :param widths: channels of the four stages (each stage halves the resolution).
    :param n_conditions: size of the condition head (ok + defects).
    :param n_colors: size of the color head.
    :param n_shapes: size of the shape head.
    :param softmax: append softmax to every head (the exported graph gives probabilities).
    """

    def __init__(self, widths: Sequence[int] = (16, 32, 48, 96), n_conditions: int = 5,
                 n_colors: int = 5, n_shapes: int = 3, softmax: bool = False) -> None:
        super().__init__()
        w = list(widths)
        self.features = nn.Sequential(
            _block(3, w[0], 1), _block(w[0], w[0], 2),
            _block(w[0], w[1], 1), _block(w[1], w[1], 2),
            _block(w[1], w[2], 1), _block(w[2], w[2], 2),
            _block(w[2], w[3], 1), _block(w[3], w[3], 2),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(0.1)
        self.condition = nn.Linear(w[3], n_conditions)
        self.color = nn.Linear(w[3], n_colors)
        self.shape = nn.Linear(w[3], n_shapes)
        self.softmax = softmax

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return (condition, color, shape) logits, or probabilities when ``softmax``."""
        f = self.dropout(torch.flatten(self.pool(self.features(x)), 1))
        outs = (self.condition(f), self.color(f), self.shape(f))
        if self.softmax:
            outs = tuple(torch.softmax(o, dim=1) for o in outs)
        return outs


def count_flops(model: nn.Module, input_size: int) -> Dict[str, float]:
    """
    Count multiply-accumulates of one forward pass on a 1 x 3 x S x S input (conv + linear).

    :return: ``{'macs': ..., 'flops': 2 * macs, 'params': ...}``.
    """
    macs = [0]

    def conv_hook(module, inputs, output):
        k = module.kernel_size[0] * module.kernel_size[1]
        macs[0] += output.numel() * (module.in_channels // module.groups) * k

    def linear_hook(module, inputs, output):
        macs[0] += module.in_features * module.out_features

    hooks = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(linear_hook))
    was_training = model.training
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, 3, input_size, input_size))
    model.train(was_training)
    for h in hooks:
        h.remove()
    params = sum(p.numel() for p in model.parameters())
    return {'macs': float(macs[0]), 'flops': 2.0 * macs[0], 'params': float(params)}
