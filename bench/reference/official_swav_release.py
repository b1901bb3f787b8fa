#!/usr/bin/env python3
"""A SwAV "release" trained by the authors' own code, for measuring `protoclust train --init`
(issue #37) where the published files cannot be downloaded: facebookresearch/swav @ 06b1b7c's
`main_swav.train`, `src/resnet50.py` and `src/multicropdataset.MultiCropDataset` train a
ResNet-50 of base width W on CIFAR-10 images written as a PNG folder (upsampled by the crops to
2 x 224 + 2 x 96 as ImageNet images would be cropped, or the two sizes of --sizes), then the model is saved as the releases
are (flat dict, `module.` keys, legacy container).

Usage (from the repository root; torch, torchvision, pillow, numpy):
    python3 bench/reference/official_swav_release.py SWAV_CHECKOUT OUT.pth.tar \
        --cifar ../shared/data/cifar10/data_batch_1.bin --images 10000 --epochs 4 --width 8

What differs from the official script, and why: one process (the distributed calls are the
fixtures' world-size-1 stand-ins), plain SGD with momentum instead of apex's LARC (apex is
not installable here), no warm-up, cosine schedule, no queue (10,000 images), fp32.
"""
import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

RECORD = 3073


def write_png_folder(cifar: Path, n: int, out: Path) -> None:
    from PIL import Image
    raw = np.frombuffer(cifar.read_bytes(), dtype=np.uint8).reshape(-1, RECORD)[:n]
    for i, r in enumerate(raw):
        d = out / f"{r[0]:02d}"
        d.mkdir(parents=True, exist_ok=True)
        img = r[1:].reshape(3, 32, 32).transpose(1, 2, 0)
        Image.fromarray(img).save(d / f"{i:05d}.png")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("swav", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--cifar", type=Path, default=Path("../shared/data/cifar10/data_batch_1.bin"))
    ap.add_argument("--images", type=int, default=10000)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--width", type=int, default=8)
    ap.add_argument("--sizes", default="224,96", help="the two crop sizes (2 crops each)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=0.3)
    ap.add_argument("--prototypes", type=int, default=100)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=31)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts" / "fixtures"))
    from deepclusterv2 import stub_environment  # noqa: E402
    from releases import DDP, swav_model  # noqa: E402

    stub_environment()
    sys.path.insert(0, str(args.swav))
    import main_swav as M  # noqa: E402
    from src.multicropdataset import MultiCropDataset  # noqa: E402

    folder = args.out.parent / f"{args.out.stem}-cifar-png"
    if not folder.exists():
        write_png_folder(args.cifar, args.images, folder)
    sizes = [int(s) for s in args.sizes.split(",")]
    data = MultiCropDataset(str(folder), sizes, [2, 2], [0.14, 0.05], [1.0, 0.14])
    loader = torch.utils.data.DataLoader(data, batch_size=args.batch, shuffle=True,
                                         drop_last=True, num_workers=0)
    model = swav_model(args.swav, args.width, args.prototypes)
    M.args = argparse.Namespace(
        crops_for_assign=[0, 1], nmb_crops=[2, 2], temperature=0.1, epsilon=0.05,
        sinkhorn_iterations=3, world_size=1, rank=0,
        freeze_prototypes_niters=len(loader), use_fp16=False)

    net = DDP(model)
    opt = torch.optim.SGD(net.parameters(), lr=args.lr, momentum=0.9, weight_decay=1e-6)
    opt.optim = opt  # train() logs LARC's inner optimiser's lr
    total = len(loader) * args.epochs
    schedule = np.array([0.0006 + 0.5 * (args.lr - 0.0006) * (1 + math.cos(math.pi * t / total))
                         for t in range(total)])
    M.logger = M.getLogger()
    start = time.time()
    for epoch in range(args.epochs):
        (_, loss), _ = M.train(loader, net, opt, epoch, schedule, None)
        print(f"epoch {epoch}: loss {loss:.4f} ({time.time() - start:.0f} s)", flush=True)
    sd = {"module." + k: v for k, v in model.state_dict().items()}
    torch.save(sd, args.out, _use_new_zipfile_serialization=False)
    print(f"wrote {args.out} after {args.epochs} epochs in {time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
