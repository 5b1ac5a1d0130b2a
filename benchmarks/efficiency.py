"""Runs ``fedwave bench efficiency`` (see :mod:`fedwave.bench.efficiency`)."""

from fedwave.bench.efficiency import main

if __name__ == "__main__":
    raise SystemExit(main())
