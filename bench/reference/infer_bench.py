#!/usr/bin/env python3
"""PyTorch reference for `protoclust bench --infer`: pooled-feature inference of a ResNet
(torchvision's, eval mode, no_grad), NCHW and channels-last, printed as rows of the same table.

Usage (from the repository root; needs `pip install torch torchvision`):
    python3 bench/reference/infer_bench.py --depth 50 --width 64 --size 224 --batch 32 --threads 2
    # the same under bf16 autocast (`torch.autocast("cpu", dtype=torch.bfloat16)`):
    python3 bench/reference/infer_bench.py --bf16 --depth 50 --size 224 --batch 32 --threads 2
    # end to end: a torchvision DataLoader (2 workers) over a folder of JPEGs, then the network:
    python3 bench/reference/infer_bench.py --folder DIR --batch 32 --threads 2

The end-to-end row decodes with PIL, Resize(256) + CenterCrop(224) + ToTensor + Normalize, as
torchvision's ImageNet evaluation (and `protoclust extract` of a released ResNet-50).
"""
import argparse
import os
import resource
import time

import torch
import torch.nn as nn
import torchvision
from torchvision import transforms


def resnet(depth, width):
    """torchvision's ResNet-18/34/50 (ImageNet stem) at base width `width`, no classifier."""
    models = torchvision.models.resnet
    block, layers = {
        18: (models.BasicBlock, [2, 2, 2, 2]),
        34: (models.BasicBlock, [3, 4, 6, 3]),
        50: (models.Bottleneck, [3, 4, 6, 3]),
    }[depth]
    net = models.ResNet(block, layers, width_per_group=64)
    if width != 64:
        net.inplanes = width
        net.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
        net.bn1 = nn.BatchNorm2d(width)
        net.layer1 = net._make_layer(block, width, layers[0])
        net.layer2 = net._make_layer(block, width * 2, layers[1], stride=2)
        net.layer3 = net._make_layer(block, width * 4, layers[2], stride=2)
        net.layer4 = net._make_layer(block, width * 8, layers[3], stride=2)
    net.fc = nn.Identity()
    return net.eval()


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def time_network(net, x, batches, bf16=False):
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        net(x)  # warm-up
        t = time.perf_counter()
        for _ in range(batches):
            net(x)
        return batches * x.shape[0] / (time.perf_counter() - t)


class Folder(torch.utils.data.Dataset):
    def __init__(self, root, transform):
        exts = (".jpg", ".jpeg", ".png")
        self.paths = sorted(
            os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs if f.lower().endswith(exts)
        )
        self.transform = transform

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        from PIL import Image

        with Image.open(self.paths[i]) as im:
            return self.transform(im.convert("RGB"))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--depth", type=int, default=50)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--batches", type=int, default=3)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--folder", help="end to end over this folder of images instead")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--layout", choices=["both", "nchw", "channels-last"], default="both")
    p.add_argument("--bf16", action="store_true", help="under bf16 autocast (torch.autocast)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    net = resnet(a.depth, a.width)
    what = f"ResNet-{a.depth} width {a.width}, {a.size} px, batch {a.batch}"
    layouts = ["nchw", "channels-last"] if a.layout == "both" else [a.layout]
    if a.folder:
        net = net.to(memory_format=torch.channels_last) if a.layout == "channels-last" else net
        tf = transforms.Compose([
            transforms.Resize(256),
            transforms.CenterCrop(a.size),
            transforms.ToTensor(),
            transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
        ])
        data = Folder(a.folder, tf)
        loader = torch.utils.data.DataLoader(data, batch_size=a.batch, num_workers=a.workers)
        fmt = torch.channels_last if a.layout == "channels-last" else torch.contiguous_format
        t = time.perf_counter()
        n = 0
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.bf16):
            for x in loader:
                net(x.contiguous(memory_format=fmt))
                n += x.shape[0]
        ips = n / (time.perf_counter() - t)
        precision = ", bf16 autocast" if a.bf16 else ""
        print(f"| extract {n} images end to end, {what}, DataLoader {a.workers} workers, "
              f"{a.layout}{precision} (PyTorch {torch.__version__}) | {ips:.1f} | "
              f"{peak_rss_mb():.0f} MB |")
        return
    for layout in layouts:
        x = torch.randn(a.batch, 3, a.size, a.size)
        m = net
        if layout == "channels-last":
            m = net.to(memory_format=torch.channels_last)
            x = x.contiguous(memory_format=torch.channels_last)
        ips = time_network(m, x, a.batches, a.bf16)
        precision = "bf16 autocast" if a.bf16 else "f32"
        print(f"| pooled-feature inference, {what}, {layout}, {precision} (PyTorch "
              f"{torch.__version__}, {a.threads} threads) | {ips:.1f} | {peak_rss_mb():.0f} MB |")


if __name__ == "__main__":
    main()
