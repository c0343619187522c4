"""Community, mental health and social care extracts to contract activity.

Community services (CSDS) and mental health (MHSDS) contacts become one activity row each
(``contacts`` in the row as its quantity); adult social care (client level data) is summed per
person, calendar month and registration period (hours as the quantity), as the contract keeps it.
"""
from __future__ import annotations

import numpy as np

from riskcap.ingest.activity import ActivityRows
from riskcap.ingest.costs import Pricing
from riskcap.ingest.gp import People, monthly_totals
from riskcap.ingest.rows import Rows


def contacts(rows: Rows, people: People, pricing: Pricing, last_day: int, setting: str) -> ActivityRows:
    """Community or mental health contacts (``setting``): one activity row per extract row."""
    pos, birth = people.match(rows)
    day = rows.dates_in_window("contact_date", birth, last_day)
    count = rows.not_negative("contacts")
    cost = rows.not_negative("cost_gbp")
    keep = rows.keep
    quantity = np.where(count.null[keep], 1, count.values[keep])
    pence = pricing.pence(cost.values[keep], cost.null[keep], setting, quantity)
    return ActivityRows.point(people.ids[pos[keep]], setting, day.values[keep], quantity, pence)


def social_care(rows: Rows, people: People, pricing: Pricing, last_day: int) -> ActivityRows:
    """Social care hours and cost summed per person, calendar month and registration period."""
    return monthly_totals(rows, people, pricing, last_day, "period_start", "hours", "social_care")
