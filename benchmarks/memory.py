"""Runs ``fedwave bench memory`` (see :mod:`fedwave.bench.memory`)."""

from fedwave.bench.memory import main

if __name__ == "__main__":
    raise SystemExit(main())
