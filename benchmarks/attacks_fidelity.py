"""Fidelity benchmark of fedwave's gradient-leakage attacks (same as ``fedwave bench attacks``).

Usage: ``python benchmarks/attacks_fidelity.py [--images 10] [--sections 1,2,3,4,5,6]``
(``--help`` lists the options for bigger runs).
"""

from fedwave.privacy.attacks.bench import main

if __name__ == "__main__":
    raise SystemExit(main())
