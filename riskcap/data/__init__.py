"""The data seam: everything riskcap knows about a data folder (read, check, summarise, write).

- :mod:`~riskcap.data.dates`: where the data end, and the index dates that default from it.
- :mod:`~riskcap.data.write`: what files people open must respect: person-level files
  owner-only, no text a spreadsheet would run as a formula.
"""
