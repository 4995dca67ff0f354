"""The PyTorch side of train_step_bench: one dense ResNet-18 training step (width 1, CIFAR stem 3x3 s1 p2 without
maxpool, batch 64, 32x32), forward in training mode, linear classifier + cross-entropy, backward; no optimizer.
Usage: /usr/bin/python3 benchmarks/train_step_torch.py   (Debian's python3-torch and python3-torchvision)"""
import statistics
import time

import torch
import torchvision

for threads in (1, 2):
    torch.set_num_threads(threads)
    torch.manual_seed(5)
    net = torchvision.models.resnet18(num_classes=10)
    net.conv1 = torch.nn.Conv2d(3, 64, 3, 1, 2, bias=False)
    net.maxpool = torch.nn.Identity()
    net.train()
    x = torch.randn(64, 3, 32, 32)
    labels = torch.arange(64) % 10

    def step():
        net.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(net(x), labels).backward()

    step()
    times = []
    for _ in range(7):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    ms = 1e3 * statistics.median(times)
    print(f"train_step threads={threads}: {ms:.1f} ms ({64 / ms * 1e3:.1f} img/s), median of 7")
