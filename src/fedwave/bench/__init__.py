"""Benchmarks of the issue-12 tasks, run by ``fedwave bench <name>``: commands that print figures.

``efficiency`` (training FLOP/s over matmul FLOP/s per executor), ``memory`` (peak RSS of a 10,000-UE
run), ``vs_flower`` (fedwave and Flower 1.41 on the same task, wall time from process start). The clock
alone is :mod:`fedwave.sim.bench` (``fedwave bench clock``); codecs, privacy and attacks have their own.
"""
