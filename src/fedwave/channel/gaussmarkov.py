"""Time-correlated small-scale fading: a first-order Gauss-Markov (AR(1)) process per UE over blocks.

Simulated time is cut into blocks of ``T_b`` seconds on an absolute grid: block n covers
``[n T_b, (n + 1) T_b)``. The scattered part of UE k's channel, a complex ``s_n ~ CN(0, 1)``, evolves as

    s_n = rho s_{n-1} + sqrt(1 - rho^2) w_n,        w_n ~ CN(0, 1) i.i.d.,

with ``rho = J0(2 pi f_D T_b)`` (Clarke/Jakes: the autocorrelation of the scattered field at lag ``T_b``,
``f_D`` the maximum Doppler shift). The process matches the Jakes correlation at one block exactly; at
lag m it gives rho^m, not J0(2 pi f_D m T_b) (an AR(1) cannot follow the Bessel oscillations). A negative
rho (``f_D T_b`` between 0.38 and 0.88; the default ``T_b = 0.423 / f_D`` gives rho = -0.12) is used as it
is: it is the Jakes value at that lag and it only flips the phase of ``s``; the power ``|s|^2``, which is
what the rate sees, has correlation rho^2 >= 0 whatever its sign.

The channel is ``h_n = sqrt(K / (K + 1)) + sqrt(1 / (K + 1)) s_n`` (Rician; the line-of-sight part stays,
the scattered part evolves; K = 0 is Rayleigh) and the block's fading power is ``|h_n|^2`` (mean 1;
marginally Exp(1) for Rayleigh). Blocks are drawn lazily in increasing order. A query that starts after
the last drawn block jumps the gap of m blocks in one step, ``s = rho^m s_last + sqrt(1 - rho^(2m)) w``
(the exact m-step transition of the AR(1)), so idle time between rounds costs nothing. A query that starts
inside the drawn blocks reads them again (a transmission cut by a round's close had drawn blocks that
the next round then reaches): every block has one value per run.

Uplink and downlink share the process of their UE (TDD reciprocity: both directions see the same channel
in a block). Innovations come from one stream per UE, ``(seed, "fading", "gm", ue)``; the state of a UE
(the first kept block, the kept values, the stream's position) is saved by :meth:`state_dict`, so a run
resumed from a checkpoint continues bit for bit.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

from fedwave.rng import numpy_generator


def bessel_j0(x: float) -> float:
    """The Bessel function J0(x) = (1 / 2 pi) * integral over [0, 2 pi) of cos(x sin t) dt.

    The integrand is periodic and analytic, so the rectangle rule with N > |x| + 40 points is exact to
    double precision (its error falls like J_N(x)); numpy only, so importing the clock stays cheap.
    """
    n = int(abs(x)) + 64
    t = np.arange(n) * (2.0 * math.pi / n)
    return float(np.mean(np.cos(x * np.sin(t))))


def ar1_filter(w: NDArray[Any], a: float, c: float, y_prev: complex | float) -> NDArray[Any]:
    """The AR(1) recursion ``y_i = a y_(i-1) + c w_i`` from ``y_(-1) = y_prev``, vectorised (|a| <= 1).

    Each segment is ``y_i = a^(i+1) y_prev + c a^i cumsum(a^-j w_j)``, with segments short enough that
    ``|a|^-j`` stays below 2^300 (no overflow; the rounding error stays ~ eps / (1 - |a|) relative).
    """
    w = np.asarray(w)
    if a == 0.0:
        return c * w
    out = np.empty(w.shape, dtype=np.result_type(w, y_prev, float))
    seg = w.size if abs(a) == 1.0 else max(1, int(300 * math.log(2.0) / -math.log(abs(a))))
    y = y_prev
    for s in range(0, w.size, seg):
        chunk = w[s : s + seg]
        pw = a ** np.arange(chunk.size + 1, dtype=float)
        out[s : s + chunk.size] = pw[1:] * y + c * pw[:-1] * np.cumsum(chunk / pw[:-1])
        y = out[s + chunk.size - 1]
    return out


def jakes_correlation(doppler_hz: float, lag_s: float) -> float:
    """Clarke/Jakes autocorrelation J0(2 pi f_D tau) of the scattered channel at lag ``lag_s`` s."""
    return bessel_j0(2.0 * math.pi * doppler_hz * lag_s)


class _UEState:
    """One UE's process: values ``s`` of blocks ``first .. first + len(s) - 1`` and its stream."""

    __slots__ = ("first", "rng", "s")

    def __init__(self, first: int, s: NDArray[np.complex128], rng: np.random.Generator) -> None:
        self.first = first
        self.s = s
        self.rng = rng

    @property
    def last(self) -> int:
        return self.first + int(self.s.size) - 1


def _cn(rng: np.random.Generator, n: int) -> NDArray[np.complex128]:
    """``n`` draws of CN(0, 1), consuming 2 n standard normals of ``rng`` in order."""
    z = rng.standard_normal((n, 2)) * math.sqrt(0.5)
    return z[:, 0] + 1j * z[:, 1]


class GaussMarkovFading:
    """The AR(1) fading processes of ``num_ues`` UEs (see the module docstring).

    Args:
        num_ues: number of UEs (ids 0 .. num_ues-1).
        rho: correlation of the scattered part between consecutive blocks, in [-1, 1].
        model: ``"rayleigh"`` or ``"rician"`` (``"none"`` has nothing to evolve).
        rician_k: Rician K (linear).
        seed: the run seed (streams ``(seed, "fading", "gm", ue)``).
    """

    def __init__(self, num_ues: int, rho: float, model: str, rician_k: float, seed: int) -> None:
        if not -1.0 <= rho <= 1.0:
            raise ValueError(f"rho must be in [-1, 1], got {rho}")
        if model not in ("rayleigh", "rician"):
            raise ValueError(f"Gauss-Markov fading needs model rayleigh or rician, got {model!r}")
        self.num_ues = int(num_ues)
        self.rho = float(rho)
        self.seed = int(seed)
        k = float(rician_k) if model == "rician" else 0.0
        self._los = math.sqrt(k / (k + 1.0))
        self._scatter = math.sqrt(1.0 / (k + 1.0))
        self._states: dict[int, _UEState] = {}

    def start(self, ue: int, block: int) -> None:
        """Begin a transmission of UE ``ue`` in block ``block``: forget the blocks before it.

        Transmissions of one UE must start in non-decreasing blocks (simulated time only moves forward).
        """
        st = self._states.get(ue)
        if st is None:
            rng = numpy_generator(self.seed, "fading", "gm", int(ue))
            self._states[ue] = _UEState(block, _cn(rng, 1), rng)
            return
        if block < st.first:
            raise RuntimeError(
                f"UE {ue}: a transmission starts in block {block}, before block {st.first} already used "
                "(fading queries must move forward in simulated time)"
            )
        if block > st.last:
            m = block - st.last
            a = self.rho**m
            innovation = math.sqrt(max(0.0, 1.0 - a * a))
            st.s = a * st.s[-1:] + innovation * _cn(st.rng, 1)
        else:
            st.s = st.s[block - st.first :].copy()
        st.first = block

    def power(self, ue: int, block: int, count: int) -> NDArray[np.float64]:
        """Fading power ``|h|^2`` of UE ``ue`` in blocks ``block .. block + count - 1``.

        ``block`` must not precede the block given to the UE's last :meth:`start`.
        """
        h = self._los + self._scatter * self.scattered(ue, block, count)
        return np.asarray(h.real**2 + h.imag**2, dtype=np.float64)

    def scattered(self, ue: int, block: int, count: int) -> NDArray[np.complex128]:
        """The scattered part ``s`` (CN(0, 1)) of UE ``ue``'s channel in blocks ``block .. block+count-1``."""
        st = self._states[ue]
        if block < st.first:
            raise RuntimeError(f"UE {ue}: block {block} precedes the kept block {st.first}")
        end = block + count - 1
        if end > st.last:
            n = end - st.last
            c = math.sqrt(max(0.0, 1.0 - self.rho * self.rho))
            new = ar1_filter(_cn(st.rng, n), self.rho, c, complex(st.s[-1]))
            st.s = np.concatenate([st.s, new])
        return st.s[block - st.first : block - st.first + count]

    # -- checkpoints ------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """The processes' state: per UE the first kept block, the kept values and the stream's state."""
        return {
            "rho": self.rho,
            "ues": {
                int(ue): {
                    "first": int(st.first),
                    "re": st.s.real.tolist(),
                    "im": st.s.imag.tolist(),
                    "rng": st.rng.bit_generator.state,
                }
                for ue, st in sorted(self._states.items())
            },
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state written by :meth:`state_dict` (of a process with the same rho).

        Raises:
            ValueError: the state belongs to a process with another rho or holds a UE id out of range.
        """
        if float(state["rho"]) != self.rho:
            raise ValueError(f"fading state has rho {state['rho']}, this run has {self.rho}")
        states: dict[int, _UEState] = {}
        for ue, d in state["ues"].items():
            if not 0 <= int(ue) < self.num_ues:
                raise ValueError(f"fading state holds UE {ue}, outside 0..{self.num_ues - 1}")
            rng = numpy_generator(self.seed, "fading", "gm", int(ue))
            rng.bit_generator.state = d["rng"]
            s = np.asarray(d["re"], dtype=float) + 1j * np.asarray(d["im"], dtype=float)
            if s.size == 0:
                raise ValueError(f"fading state of UE {ue} holds no block")
            states[int(ue)] = _UEState(int(d["first"]), s, rng)
        self._states = states
