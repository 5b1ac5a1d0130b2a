"""How client work is executed (one seam): ``make_executor(name)``."""

from fedwave.engine.executor import EXECUTORS, Executor, SequentialExecutor, make_executor

__all__ = ["EXECUTORS", "Executor", "SequentialExecutor", "make_executor"]
