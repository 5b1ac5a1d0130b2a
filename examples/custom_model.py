"""Train your own ``nn.Module`` over fedwave's default cell and look at the rounds as a DataFrame.

    python examples/custom_model.py

The class is given to :func:`fedwave.run` directly; a config can name it by import path instead
(``model.name=custom_model:TinyNet``), which ``fedwave run`` and ``fedwave compare`` accept too.
"""

import math

from torch import nn

import fedwave


class TinyNet(nn.Module):
    """A two-layer perceptron sized from the dataset's input shape (channels, height, width)."""

    def __init__(self, input_shape: tuple[int, ...], num_classes: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(), nn.Linear(math.prod(input_shape), 32), nn.ReLU(), nn.Linear(32, num_classes)
        )

    def forward(self, x):
        return self.net(x)


if __name__ == "__main__":
    result = fedwave.run(fedwave.make_config(fl={"rounds": 3}), model=TinyNet)
    print(result.rounds[["round", "accuracy", "t_end", "bytes_up"]].to_string(index=False))
    print(
        f"final accuracy {result.final_accuracy:.3f} after {result.rounds['t_end'].iloc[-1]:.3f} simulated s"
    )
