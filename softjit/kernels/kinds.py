"""The operations the row kernels compute, by number.

The kernels take the operation as an ``int64`` argument (one compiled
function serves all three, the branch taken per call); numba reads the
members below as constants.  Callers pass ``int(kind)``: an ``IntEnum``
argument would compile a second specialization of every kernel.
"""

from __future__ import annotations

from enum import IntEnum


class Kind(IntEnum):
    """An operation of the row kernels."""

    SOFTMAX = 0
    LOG_SOFTMAX = 1
    LOGSUMEXP = 2

    @classmethod
    def of(cls, name: str) -> Kind:
        """The kind called ``name`` (``"softmax"``, ``"log_softmax"`` or
        ``"logsumexp"``).

        Examples
        --------
        >>> Kind.of("log_softmax")
        <Kind.LOG_SOFTMAX: 1>
        """
        return cls[name.upper()]
