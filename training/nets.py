"""The three networks: small plain conv nets sized for CPU training and CPU/GPU serving."""
from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

from fvi.charset import NUM_CLASSES, TOP_K
from fvi.schema import CARD_TYPES, FIELDS


def cbr(cin: int, cout: int, stride: int = 1, dilation: int = 1, k: int = 3) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, padding=dilation * (k // 2), dilation=dilation, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class _UNetLite(nn.Module):
    """Encoder to stride 16 with dilated context, decoder back to stride 4 (heatmaps/maps)."""

    def __init__(self, cin: int, widths: tuple[int, int, int, int], cout: int) -> None:
        super().__init__()
        w1, w2, w3, w4 = widths
        self.s2 = cbr(cin, w1, 2)
        self.s4 = nn.Sequential(cbr(w1, w2, 2), cbr(w2, w2))
        self.s8 = nn.Sequential(cbr(w2, w3, 2), cbr(w3, w3))
        self.s16 = nn.Sequential(cbr(w3, w4, 2), cbr(w4, w4), cbr(w4, w4, dilation=2), cbr(w4, w4, dilation=4))
        self.lat8 = cbr(w3, w3, k=1)
        self.up8 = cbr(w4, w3, k=1)
        self.fuse8 = cbr(w3, w3)
        self.lat4 = cbr(w2, w3, k=1)
        self.fuse4 = cbr(w3, w2)
        self.head = nn.Conv2d(w2, cout, 1)
        nn.init.constant_(self.head.bias, -2.19)  # start at p≈0.1: maps are mostly background

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(stride-4 map features, stride-16 context)."""
        # pixels in (uint8 when served, float 0-255 with jitter in training): one place normalises
        x = x.float() / 255.0 - 0.5
        c4 = self.s4(self.s2(x))
        c8 = self.s8(c4)
        c16 = self.s16(c8)
        p8 = self.fuse8(self.lat8(c8) + F.interpolate(self.up8(c16), scale_factor=2.0, mode="nearest"))
        return self.fuse4(self.lat4(c4) + F.interpolate(p8, scale_factor=2.0, mode="nearest")), c16

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)[0])


class CropperNet(_UNetLite):
    """(B, 3, 256, 256) → (B, 4, 64, 64) corner logits, one channel per corner class."""

    def __init__(self) -> None:
        super().__init__(3, (16, 32, 48, 96), 4)


class DetectorNet(_UNetLite):
    """(B, 3, 320, 512) → (B, len(FIELDS), 80, 128) text-line logits per field class, and (B, len(CARD_TYPES))
    card type logits from the pooled whole-card context (types differ in colour and layout, which the
    line maps already have to see)."""

    def __init__(self) -> None:
        super().__init__(3, (16, 24, 48, 64), len(FIELDS))
        self.type_head = nn.Linear(64, len(CARD_TYPES))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        p4, c16 = self.features(x)
        return self.head(p4), self.type_head(c16.mean((2, 3)))


class DetectorOutputs(nn.Module):
    """What gets exported for the detector: line probabilities and card type probabilities."""

    def __init__(self, net: DetectorNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        maps, types = self.net(x)
        return torch.sigmoid(maps), torch.softmax(types, dim=-1)


class Residual(nn.Module):
    """x + BN(conv(x)), the BN scale starting at zero: a block added to a trained net starts as the identity."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(c)
        nn.init.zeros_(self.bn.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.bn(self.conv(x))


class ReaderNet(nn.Module):
    """(B, 1, 32, W) → (B, W/4, NUM_CLASSES) CTC logits: conv features, height collapsed, BiLSTM.

    res8 / res4 were added to a trained reader (command 6 of models/reader.md): with the same training,
    a deeper conv read validation crops better (CER 1.41% against 1.45%) where a wider BiLSTM had not.
    """

    # start as identity, so the weights of a reader from before them load as they are (initial_weights)
    GROWN = ("res8.", "res4.")

    def __init__(self, hidden: int = 96) -> None:
        super().__init__()
        self.features = nn.Sequential(
            cbr(1, 16), nn.MaxPool2d(2, 2),  # 16 x W/2
            cbr(16, 32), nn.MaxPool2d(2, 2),  # 8 x W/4
            cbr(32, 64), cbr(64, 64),
            nn.MaxPool2d((2, 1), (2, 1)),  # 4 x W/4
            cbr(64, 96), cbr(96, 96),
            nn.MaxPool2d((2, 1), (2, 1)),  # 2 x W/4
            nn.Conv2d(96, 128, (2, 1), bias=False), nn.BatchNorm2d(128), nn.ReLU(inplace=True),  # 1 x W/4
        )
        self.res8 = Residual(64)
        self.res4 = Residual(96)
        self.rnn = nn.LSTM(128, hidden, batch_first=True, bidirectional=True)
        self.classifier = nn.Linear(2 * hidden, NUM_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.features  # res8 after the two 64-channel convs (8 x W/4), res4 after the 96-channel ones (4 x W/4)
        x = self.res4(f[6:9](self.res8(f[0:6](x))))
        x = f[9:](x).squeeze(2).permute(0, 2, 1)  # B, T, 128
        x, _ = self.rnn(x)
        return self.classifier(x)


class WithSigmoid(nn.Module):
    """What gets exported for the map nets: probabilities, so every consumer decodes the same way."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net(x))


class TopClasses(nn.Module):
    """What gets exported for the reader: per step the TOP_K best classes and their probabilities
    (fvi.charset.top_classes), (B, T, K, 2)."""

    def __init__(self, net: nn.Module, k: int = TOP_K) -> None:
        super().__init__()
        self.net = net
        self.k = k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p, c = torch.softmax(self.net(x), dim=-1).topk(self.k, dim=-1)
        return torch.stack([c.float(), p], dim=-1)
