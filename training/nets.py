"""The reader network: a small plain conv net sized for CPU training and CPU/GPU serving."""
from __future__ import annotations

import torch
from torch import nn

from fvi.charset import NUM_CLASSES, TOP_K


def cbr(cin: int, cout: int, stride: int = 1, dilation: int = 1, k: int = 3) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, padding=dilation * (k // 2), dilation=dilation, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


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
