"""Twin of :mod:`riskcap.registrations`' kernel: which period holds a person on a day."""
from __future__ import annotations

import numpy as np

from riskcap.registrations import NOWHERE, Periods


def period_on(periods: Periods, person_id, day) -> np.ndarray:
    """:meth:`riskcap.registrations.Periods.on` by scanning every period of the person."""
    out = np.full(len(person_id), NOWHERE, dtype=np.int64)
    for i, (p, d) in enumerate(zip(np.asarray(person_id).tolist(), np.asarray(day).tolist())):
        for k in range(len(periods)):
            if periods.person[k] == p and periods.start[k] <= d < periods.end[k]:
                out[i] = k
    return out
