"""Shared test set-up: one torch thread (CI has 2 cores), deterministic algorithms."""

import os

import torch

os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(1)
