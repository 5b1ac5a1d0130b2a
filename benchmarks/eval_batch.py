"""The BS's evaluation of the global model on the MNIST test split at several batch sizes.

    python benchmarks/eval_batch.py [--models cnn,convnet,resnet,lenet,2nn] [--sizes 1024,256,128]
        [--repeats 2]

One torch thread, freshly initialised models, the 10,000 test images. Prints the best wall time of
:func:`fedwave.server.evaluate.evaluate` over the repeats for each model and batch size. Large batches
of a convolutional model make activations of tens to hundreds of MB (``cnn``'s first layer: 3.2 MB per
32 images), which run from memory instead of cache.
"""

from __future__ import annotations

import argparse
import time

import torch

from fedwave.config import load_config
from fedwave.engine.allocator import keep_freed_memory
from fedwave.fl.run import build_simulation
from fedwave.server.evaluate import evaluate


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="cnn,convnet,resnet,lenet,2nn")
    p.add_argument("--sizes", default="1024,256,128")
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(1)
    keep_freed_memory()  # as the fedwave command does
    sizes = [int(s) for s in args.sizes.split(",")]
    print("model      " + "".join(f"{f'batch {s}':>12}" for s in sizes))
    for name in args.models.split(","):
        cfg = load_config(None, ["data.dataset=mnist", f"model.name={name}", "fl.num_ues=10"])
        bs = build_simulation(cfg, keep_records=False).driver.bs
        best = {s: float("inf") for s in sizes}
        for _ in range(args.repeats):
            for s in sizes:
                t0 = time.perf_counter()
                evaluate(bs.model, bs.x_test, bs.y_test, batch_size=s)
                best[s] = min(best[s], time.perf_counter() - t0)
        print(f"{name:<11}" + "".join(f"{best[s]:>10.2f} s" for s in sizes))


if __name__ == "__main__":
    main()
