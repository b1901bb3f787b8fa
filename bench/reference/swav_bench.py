#!/usr/bin/env python3
"""PyTorch reference for `protoclust bench`: the same SwAV training step and the same multi-crop
pipeline (torchvision + PIL), measured on this machine, printed as rows of the same table.

Usage (from the repository root; needs `pip install torch torchvision numpy pillow`):
    python3 bench/reference/swav_bench.py --width 8 --batch 128 --crops 2x32 --prototypes 512 \
        --cifar ../shared/data/cifar10/data_batch_1.bin --threads 2
    # GPU, ResNet-50 multi-crop, bf16 autocast (the step only):
    python3 bench/reference/swav_bench.py --device cuda --amp --depth 50 --width 64 \
        --crops 2x224,6x96 --batch 64 --prototypes 3000 --no-pipeline

The step is ResNet-18 (small stem, base width --width; --depth 50: ResNet-50 with the ImageNet
stem, projector hidden 2048) -> Linear-BN-ReLU-Linear projector ->
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


def resnet(depth, width, small_stem):
    """torchvision's ResNet-18/50 rebuilt at base width `width`; the small stem (3x3, stride 1,
    no max-pool) for CIFAR, else the ImageNet one (7x7, stride 2, max-pool)."""
    models = torchvision.models.resnet
    block, layers = (models.BasicBlock, [2, 2, 2, 2]) if depth == 18 else (models.Bottleneck, [3, 4, 6, 3])
    net = models.ResNet(block, layers)
    net.inplanes = width
    if small_stem:
        net.conv1 = nn.Conv2d(3, width, 3, 1, 1, bias=False)
        net.maxpool = nn.Identity()
    else:
        net.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
    net.bn1 = nn.BatchNorm2d(width)
    net.layer1 = net._make_layer(block, width, layers[0])
    net.layer2 = net._make_layer(block, width * 2, layers[1], stride=2)
    net.layer3 = net._make_layer(block, width * 4, layers[2], stride=2)
    net.layer4 = net._make_layer(block, width * 8, layers[3], stride=2)
    net.fc = nn.Identity()
    return net, width * 8 * block.expansion


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


def crop_groups(spec):
    """'2x224,6x96' -> [(2, 224), (6, 96)]."""
    return [tuple(int(v) for v in g.split("x")) for g in spec.split(",")]


def bench_step(args):
    width, bs = args.width, args.batch
    groups = crop_groups(args.crops)
    n_crops = sum(c for c, _ in groups)
    dev = torch.device(args.device)
    backbone, dim = resnet(args.depth, width, small_stem=args.depth == 18)
    hidden, out = (2048, 128) if args.depth == 50 else (512, 128)
    head = nn.Sequential(nn.Linear(dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Linear(hidden, out))
    protos = nn.Linear(out, args.prototypes, bias=False)
    for m in (backbone, head, protos):
        m.to(dev)
    params = list(backbone.parameters()) + list(head.parameters()) + list(protos.parameters())
    # One tensor per crop size, as SwAV's multi-crop forward (one backbone pass per size).
    x = [torch.randn(c * bs, 3, size, size, device=dev) for c, size in groups]
    bufs = {}
    times = []
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    amp = torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=args.amp)
    for it in range(args.steps + 2):
        sync()
        t = time.perf_counter()
        with torch.no_grad():
            protos.weight.copy_(F.normalize(protos.weight, dim=1))
        with amp:
            feats = torch.cat([backbone(v) for v in x])
            z = F.normalize(head(feats).float(), dim=1)
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
        sync()
        if it >= 2:
            times.append(time.perf_counter() - t)
    return bs * len(times) / sum(times)


def bench_pipeline(args):
    raw = np.fromfile(args.cifar, dtype=np.uint8).reshape(-1, 3073)
    n = min(args.pipeline_images, len(raw))
    imgs = [Image.fromarray(r[1:].reshape(3, 32, 32).transpose(1, 2, 0)) for r in raw[:n]]
    n_crops, size = crop_groups(args.crops)[0]
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
    ap.add_argument("--depth", type=int, choices=[18, 50], default=18)
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--amp", action="store_true", help="bf16 autocast for the backbone and head")
    ap.add_argument("--no-pipeline", action="store_true", help="time the training step only")
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    n_crops = sum(c for c, _ in crop_groups(args.crops))
    step = bench_step(args)
    where = torch.cuda.get_device_name() if args.device == "cuda" else f"{args.threads} threads"
    print(f"PyTorch {torch.__version__}, torchvision {torchvision.__version__}, {where}")
    if not args.no_pipeline:
        pipe = bench_pipeline(args)
        print(f"| multi-crop pipeline (torchvision + PIL, {args.threads} workers) | {pipe:.1f} | {pipe * n_crops:.1f} |")
    precision = "bf16 autocast" if args.amp else "f32"
    print(f"| SwAV training step (PyTorch eager, {precision}) | {step:.1f} | {step * n_crops:.1f} |")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"| peak RSS of the process (ru_maxrss) | {rss:.0f} MB | – |")


if __name__ == "__main__":
    main()
