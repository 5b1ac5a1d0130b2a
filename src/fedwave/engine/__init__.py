"""How client work is executed (one seam): ``make_executor(name)``."""

from fedwave.engine.executor import (
    EXECUTORS,
    BatchedExecutor,
    Executor,
    SequentialExecutor,
    Work,
    make_executor,
)

__all__ = ["EXECUTORS", "BatchedExecutor", "Executor", "SequentialExecutor", "Work", "make_executor"]
