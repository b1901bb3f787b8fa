#!/usr/bin/env python3
"""PyTorch reference for `protoclust bench`: the same SwAV training step and the same multi-crop
pipeline (torchvision + PIL), measured on this machine, printed as rows of the same table.

Usage (from the repository root; needs `pip install torch torchvision numpy pillow`):
    python3 bench/reference/swav_bench.py --width 8 --batch 128 --crops 2x32 --prototypes 512 \
        --cifar ../shared/data/cifar10/data_batch_1.bin --threads 2

The step is ResNet-18 (small stem, base width --width) -> Linear-BN-ReLU-Linear projector ->
L2 normalise -> prototypes; SwAV loss with 3 Sinkhorn iterations (as main_swav.py); SGD momentum
0.9 under LARS (trust ratio, solo-learn style). The pipeline is RandomResizedCrop(scale 0.14-1),
flip, ColorJitter(0.4,0.4,0.2,0.1) p=0.8, grayscale p=0.2, ToTensor, Normalize, per crop.
"""
import argparse
import resource
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from PIL import Image
from torchvision import transforms


def resnet18_small(width):
    net = torchvision.models.resnet.ResNet(torchvision.models.resnet.BasicBlock, [2, 2, 2, 2])
    # Rebuild with the requested base width.
    net.inplanes = width
    net.conv1 = nn.Conv2d(3, width, 3, 1, 1, bias=False)
    net.bn1 = nn.BatchNorm2d(width)
    net.maxpool = nn.Identity()
    net.layer1 = net._make_layer(torchvision.models.resnet.BasicBlock, width, 2)
    net.layer2 = net._make_layer(torchvision.models.resnet.BasicBlock, width * 2, 2, stride=2)
    net.layer3 = net._make_layer(torchvision.models.resnet.BasicBlock, width * 4, 2, stride=2)
    net.layer4 = net._make_layer(torchvision.models.resnet.BasicBlock, width * 8, 2, stride=2)
    net.fc = nn.Identity()
    return net


@torch.no_grad()
def sinkhorn(out, eps=0.05, iters=3):
    q = torch.exp(out / eps).t()
    b, k = q.shape[1], q.shape[0]
    q /= q.sum()
    for _ in range(iters):
        q /= q.sum(dim=1, keepdim=True)
        q /= k
        q /= q.sum(dim=0, keepdim=True)
        q /= b
    q *= b
    return q.t()


@torch.no_grad()
def lars_sgd_step(params, lr, momentum=0.9, wd=1e-6, eta=0.02, bufs=None):
    for i, p in enumerate(params):
        if p.grad is None:
            continue
        d = p.grad
        if p.ndim > 1:
            pn, gn = p.norm(), d.norm()
            if pn > 0 and gn > 0:
                local = min(float(eta * pn / (gn + wd * pn + 1e-8)) / lr, 1.0)
                d = (d + wd * p) * local
        b = bufs.get(i)
        b = d.clone() if b is None else b.mul_(momentum).add_(d)
        bufs[i] = b
        p.data.add_(b, alpha=-lr)


def bench_step(args):
    width, bs = args.width, args.batch
    n_crops, size = (int(x) for x in args.crops.split("x"))
    backbone = resnet18_small(width)
    dim = width * 8
    head = nn.Sequential(nn.Linear(dim, 512), nn.BatchNorm1d(512), nn.ReLU(), nn.Linear(512, 128))
    protos = nn.Linear(128, args.prototypes, bias=False)
    params = list(backbone.parameters()) + list(head.parameters()) + list(protos.parameters())
    x = [torch.randn(bs, 3, size, size) for _ in range(n_crops)]
    bufs = {}
    times = []
    for it in range(args.steps + 2):
        t = time.perf_counter()
        with torch.no_grad():
            protos.weight.copy_(F.normalize(protos.weight, dim=1))
        z = F.normalize(head(backbone(torch.cat(x))), dim=1)
        scores = protos(z)
        loss = 0
        for c in range(2):
            q = sinkhorn(scores[c * bs:(c + 1) * bs].detach())
            sub = 0
            for v in range(n_crops):
                if v != c:
                    sub -= torch.mean(torch.sum(q * F.log_softmax(scores[v * bs:(v + 1) * bs] / 0.1, dim=1), dim=1))
            loss += sub / (n_crops - 1)
        loss /= 2
        for p in params:
            p.grad = None
        loss.backward()
        lars_sgd_step(params, 0.3, bufs=bufs)
        if it >= 2:
            times.append(time.perf_counter() - t)
    return bs * len(times) / sum(times)


def bench_pipeline(args):
    raw = np.fromfile(args.cifar, dtype=np.uint8).reshape(-1, 3073)
    n = min(args.pipeline_images, len(raw))
    imgs = [Image.fromarray(r[1:].reshape(3, 32, 32).transpose(1, 2, 0)) for r in raw[:n]]
    n_crops, size = (int(x) for x in args.crops.split("x"))
    t = transforms.Compose([
        transforms.RandomResizedCrop(size, scale=(0.14, 1.0)),
        transforms.RandomHorizontalFlip(),
        transforms.RandomApply([transforms.ColorJitter(0.4, 0.4, 0.2, 0.1)], p=0.8),
        transforms.RandomGrayscale(p=0.2),
        transforms.ToTensor(),
        transforms.Normalize([0.4914, 0.4822, 0.4465], [0.247, 0.243, 0.261]),
    ])

    class DS(torch.utils.data.Dataset):
        def __len__(self):
            return n

        def __getitem__(self, i):
            return [t(imgs[i]) for _ in range(n_crops)]

    loader = torch.utils.data.DataLoader(DS(), batch_size=args.batch, num_workers=args.threads)
    start = time.perf_counter()
    for _ in loader:
        pass
    return n / (time.perf_counter() - start)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--width", type=int, default=8)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--crops", default="2x32")
    ap.add_argument("--prototypes", type=int, default=512)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cifar", default="../shared/data/cifar10/data_batch_1.bin")
    ap.add_argument("--pipeline-images", type=int, default=2048)
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    n_crops = int(args.crops.split("x")[0])
    pipe = bench_pipeline(args)
    step = bench_step(args)
    print(f"PyTorch {torch.__version__}, torchvision {torchvision.__version__}, {args.threads} threads")
    print(f"| multi-crop pipeline (torchvision + PIL, {args.threads} workers) | {pipe:.1f} | {pipe * n_crops:.1f} |")
    print(f"| SwAV training step (PyTorch eager) | {step:.1f} | {step * n_crops:.1f} |")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"| peak RSS of the process (ru_maxrss) | {rss:.0f} MB | – |")


if __name__ == "__main__":
    main()
