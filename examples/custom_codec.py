"""A codec defined outside fedwave (int8_codec.py): pass the contract suite, then compare it with fp32.

Run from this directory (so ``int8_codec`` is importable)::

    python custom_codec.py            # or: PYTHONPATH=examples python examples/custom_codec.py

The same study from the shell::

    fedwave compare -o fl.rounds=3 -o model.name=mlp --vary codec=fp32,int8_codec:Int8Codec
"""

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # int8_codec.py sits beside this file

import fedwave
from fedwave.testing import check_codec

rules = check_codec("int8_codec:Int8Codec", nmse_bound=1e-4)
print("contract passed:", ", ".join(rules))

with tempfile.TemporaryDirectory() as tmp:
    study = fedwave.compare(
        fl={"rounds": 3},
        model={"name": "mlp"},
        vary={"codec": ["fp32", "int8_codec:Int8Codec"]},
        study_dir=Path(tmp) / "study",
    )
    last = study.rounds.sort_values("round").groupby("method").tail(1)
    print(last[["method", "round", "accuracy", "bytes_up", "t_end"]].to_string(index=False))
