"""The ``fedwave`` command's imports: the cyclic garbage collector paused while they run.

Importing torch and fedwave's training modules creates about 282,000 objects (modules, classes,
functions, their dictionaries) that live as long as the process. While they are being created,
Python's cyclic collector runs its full (generation 2) collection three times, each time walking over
all of them: about 0.2 s of a ``fedwave run`` of the ``vs_flower`` task (``gc.callbacks`` timed 0.14 s
in those three collections and 0.07 s in the younger ones). They find little to free: a collection
right after the imports finds about 7,300 unreachable objects (0.76 MiB by ``sys.getsizeof``). So a
command that trains imports what it needs inside :func:`imports`: the collector is paused for the
block, then every object that exists is frozen (``gc.freeze``: left out of every later collection, as
for long-lived start-up objects before forking; the unreachable ones then stay allocated until the
process ends) and the collector runs again, for the objects the command makes from then on.

Only the ``fedwave`` command's own process does this (:func:`fedwave.cli.entry` calls
:func:`pause_during_imports`); in another program, such as tests calling :func:`fedwave.cli.main`,
:func:`imports` is a plain block and the collector is left as it is.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

#: Set by :func:`pause_during_imports`: :func:`imports` pauses the collector in this process.
_ENABLED: list[bool] = []


def pause_during_imports() -> None:
    """Make :func:`imports` pause the collector and freeze what exists after it (this process only)."""
    _ENABLED.append(True)


@contextlib.contextmanager
def imports() -> Iterator[None]:
    """A block of imports: after :func:`pause_during_imports`, with the cyclic collector paused, and every
    object that exists at its end frozen (``gc.freeze``) before the collector runs again.

    Frozen objects are never collected; they stay visible to ``gc.get_objects`` only after
    ``gc.unfreeze()`` (which :func:`fedwave.cli.entry`'s quick exit calls before looking for open files).
    A collector that was already disabled is left so, and nothing is frozen.
    """
    if not _ENABLED or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()
