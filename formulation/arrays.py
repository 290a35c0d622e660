"""Array aliases and read-only helpers shared by the model objects (:mod:`formulation.model`,
:mod:`formulation.system`, :mod:`formulation.workload`).

Importing this module also teaches pickle to rebuild read-only mapping proxies (see below).
"""

from __future__ import annotations

import copyreg
from types import MappingProxyType
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]


def _mappingproxy(d: dict[Any, Any]) -> MappingProxyType[Any, Any]:
    return MappingProxyType(d)


def _reduce_mappingproxy(m: MappingProxyType[Any, Any]) -> tuple[Any, tuple[dict[Any, Any]]]:
    return _mappingproxy, (dict(m),)


# Model objects hold read-only mapping proxies, which the standard pickler refuses; instances travel
# to worker processes (batch solving), so pickle rebuilds a proxy from a plain dict.
copyreg.pickle(MappingProxyType, _reduce_mappingproxy)


def _frozen(a: npt.ArrayLike, dtype: Any = np.float64) -> Any:
    arr = np.array(a, dtype=dtype)
    arr.setflags(write=False)
    return arr
