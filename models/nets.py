"""The small CNNs of the bundled workspaces. Plain ``nn.Module``s: Grad-CAM sees ordinary Conv2d layers."""

from __future__ import annotations

from torch import nn


class BasicBlock(nn.Module):
    """ResNet's basic block: two 3x3 convs with batch norm and an identity (or 1x1 projection) shortcut."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ShapesResNet(nn.Module):
    """A ResNet-style CNN for 64x64 shapes: 12 Conv2d layers, the last at 8x8 (one cell per 8 px).

    stem (5x5 conv, stride 2, max-pool: 64 -> 16 px), layer1 (2 blocks, 16x16), layer2 (2 blocks, stride 2:
    8x8), ``head`` (1x1 conv with bias, ReLU), global average pool, ``fc``: the classic CAM layout, so Grad-CAM of
    the last Conv2d is faithful. Everything the classifier sees passes through the head conv (in a plain ResNet the
    last conv sits inside a residual branch, and what the identity path carries is invisible to its Grad-CAM), and
    no batch norm follows it (a BN shift would add per-channel offsets to the map that the model itself removes).
    Its 8x8 map keeps Grad-CAM precise enough to point at objects.
    """

    def __init__(self, num_classes: int = 8, widths: tuple[int, int, int, int] = (24, 32, 64, 128)):
        super().__init__()
        stem, mid, top, head = widths
        self.stem = nn.Sequential(
            nn.Conv2d(3, stem, 5, 2, 2, bias=False), nn.BatchNorm2d(stem), nn.ReLU(inplace=True), nn.MaxPool2d(2)
        )
        self.layer1 = nn.Sequential(BasicBlock(stem, mid), BasicBlock(mid, mid))
        self.layer2 = nn.Sequential(BasicBlock(mid, top, stride=2), BasicBlock(top, top))
        self.head = nn.Sequential(nn.Conv2d(top, head, 1), nn.ReLU(inplace=True))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(head, num_classes)

    def forward(self, x):
        x = self.head(self.layer2(self.layer1(self.stem(x))))
        return self.fc(self.pool(x).flatten(1))


class DigitsCNN(nn.Module):
    """Five 3x3 convs for 32x32 digits (last at 8x8), global average pool, dropout and ``fc``."""

    def __init__(self, num_classes: int = 10):
        super().__init__()

        def conv(cin: int, cout: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

        self.features = nn.Sequential(
            *conv(3, 16), *conv(16, 16), nn.MaxPool2d(2),
            *conv(16, 32), *conv(32, 32), nn.MaxPool2d(2),
            *conv(32, 64),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(0.2)
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x):
        return self.fc(self.dropout(self.pool(self.features(x)).flatten(1)))
