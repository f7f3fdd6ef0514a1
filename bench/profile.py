"""Where in-process scoring time goes: per layer of the default model at one batch size.

    python -m bench.profile [--batch 256] [--channels 8] [--window 64]

Each layer is timed alone on its real input, with its FLOPs, so convolutions can be compared
with the machine's matmul rate and the element-wise layers (GroupNorm, SiLU), which do no FLOPs
the compute bound counts, show their share. Then `score` with glibc's default allocator against
`reuse_freed_memory`, each in fresh processes that only load a model and score, as a server
does (a process that trained first has already raised glibc's adaptive thresholds), alternated
over rounds because the shared machines' speed drifts.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from bench.throughput import detector, matmul_gflops, rate
from models import TrainConfig, reuse_freed_memory, score, train_student
from models.synthetic import make_windows
from models.vae import WindowVAE


def per_call_us(fn: Callable[[], Any], seconds: float = 0.5) -> float:
    return 1e6 / rate(fn, 1, seconds)


def flops(fn: Callable[[], Any]) -> float:
    with FlopCounterMode(display=False) as fc:
        fn()
    return float(fc.get_total_flops())


def faults_per_call(fn: Callable[[], Any], n: int = 5) -> float:
    fn()
    f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(n):
        fn()
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) / n


def layers(vae: WindowVAE, b: int) -> list[tuple[str, nn.Module, torch.Tensor]]:
    """(name, module, its input) along the forward pass at the posterior mean."""
    c, t, d, k = vae.cfg.channels, vae.cfg.window, vae.cfg.latent_dim, vae.cfg.regimes
    out: list[tuple[str, nn.Module, torch.Tensor]] = []
    h = torch.randn(b, 2 * c, t)
    for i, m in enumerate(vae.enc):
        out.append((f"enc.{i} {type(m).__name__}", m, h))
        h = m(h)
    out.append(("enc_head Linear", vae.enc_head, h))
    h = torch.randn(b, d + k)
    out.append(("dec_in Linear", vae.dec_in, h))
    h = vae.dec_in(h).view(b, -1, vae.steps)
    for i, m in enumerate(vae.dec):
        out.append((f"dec.{i} {type(m).__name__}", m, h))
        h = m(h)
    return out


AB_BATCHES = (64, 256, 1024)


def allocator_probe(tuned: bool, c: int, t: int) -> dict[str, float]:
    """Score at each batch size in this (fresh) process; page faults per batch of 1024."""
    det = train_student(make_windows(200, c, t, 0, seed=0), cfg=TrainConfig(max_epochs=1)).detector
    if tuned:
        reuse_freed_memory()
    out = {}
    for b in AB_BATCHES:
        x = make_windows(b, c, t, 0, seed=2)
        out[str(b)] = rate(partial(score, det, x), b, 1.5)
    out["faults"] = faults_per_call(partial(score, det, x))
    return out


def allocator_ab(rounds: int, a: argparse.Namespace) -> dict[str, list[dict[str, float]]]:
    runs: dict[str, list[dict[str, float]]] = {"default": [], "tuned": []}
    for _ in range(rounds):
        for kind in runs:
            cmd = [sys.executable, "-m", "bench.profile", "--probe", kind, "--channels",
                   str(a.channels), "--window", str(a.window), "--threads", str(a.threads)]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            runs[kind].append(json.loads(out.strip().splitlines()[-1]))
    return runs


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--channels", type=int, default=8)
    p.add_argument("--window", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3, help="fresh-process pairs for the allocator")
    p.add_argument("--probe", choices=["default", "tuned"], help=argparse.SUPPRESS)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    if a.probe:
        print(json.dumps(allocator_probe(a.probe == "tuned", a.channels, a.window)))
        return
    ab = allocator_ab(a.rounds, a)
    reuse_freed_memory()
    vae = detector(a.channels, a.window).vae
    vae.eval()
    with torch.inference_mode():
        rows = [(name, list(h.shape), per_call_us(partial(m, h)), flops(partial(m, h)))
                for name, m, h in layers(vae, a.batch)]
    gf = matmul_gflops()
    total = sum(r[2] for r in rows)
    print(f"\nC={a.channels} T={a.window} batch {a.batch}, {a.threads} threads; float32 matmul "
          f"{gf:.1f} GFLOP/s\n")
    print("| layer | input | us | GFLOP/s | share of layer time |\n|---|---|---|---|---|")
    for name, shape, us, fl in rows:
        print(f"| {name} | {shape} | {us:.0f} | {fl / us / 1e3:.0f} | {100 * us / total:.1f} % |")
    conv = sum(r[2] for r in rows if r[3] > 0)
    print(f"\nlayers with FLOPs (conv, linear): {100 * conv / total:.0f} % of the layer time; "
          f"sum of layers {total:.0f} us")
    print(f"\nscore() windows/s, median of {a.rounds} fresh processes each, alternated:\n")
    cols = ["allocator", *(f"batch {b}" for b in AB_BATCHES), "page faults per batch of 1024"]
    print("| " + " | ".join(cols) + " |\n" + "|---" * len(cols) + "|")
    for kind, runs in ab.items():
        med = {k: float(np.median([r[k] for r in runs])) for k in runs[0]}
        print(f"| {kind} | " + " | ".join(f"{med[str(b)]:,.0f}" for b in AB_BATCHES)
              + f" | {med['faults']:,.0f} |")


if __name__ == "__main__":
    main()
