"""Print a JSON scoring request of synthetic windows (for the README's curl walkthrough)."""

from __future__ import annotations

import argparse
import json

from models.synthetic import inject_fault, make_windows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--channels", type=int, default=3)
    p.add_argument("--window", type=int, default=16)
    p.add_argument("--count", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fault-channel", type=int, default=None)
    a = p.parse_args()
    x = make_windows(a.count, a.channels, a.window, regime=0, seed=a.seed)
    if a.fault_channel is not None:
        x = inject_fault(x, a.fault_channel)
    print(json.dumps({"windows": [{"values": w.round(4).tolist()} for w in x]}))


if __name__ == "__main__":
    main()
