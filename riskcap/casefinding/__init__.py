"""Case-finding lists for multidisciplinary teams (MDTs): who is most at risk, and why.

``riskcap casefind`` reads a scores file and the data it was made from, and writes one list
per practice. The steps, one module each:

* :mod:`~riskcap.casefinding.inputs`: read and check the scores file, and the rows of the
  listed people only (their conditions and activity), for their features;
* :mod:`~riskcap.casefinding.eligibility`: who may be listed at the list date, with the
  first reason for each exclusion (opted-out people never are);
* :mod:`~riskcap.casefinding.selection`: the top k%, top N or everyone above a score, per
  practice or population, in one deterministic order;
* :mod:`~riskcap.casefinding.lists`: the columns MDTs read (pseudonym, age, tier, reasons,
  conditions, recent activity, impactable) and a check that each reason still fits the data;
* :mod:`~riskcap.casefinding.previous`: the previous list read back, and who is new or
  moved tier;
* :mod:`~riskcap.casefinding.files`: one CSV and one XLSX per practice, ``index.csv`` and
  ``summary.json``, readable by their owner only;
* :mod:`~riskcap.casefinding.run`: :func:`~riskcap.casefinding.run.casefind`, the whole job,
  and its summary.

``docs/casefinding.md`` is the user's guide.
"""
