"""The data seam: everything riskcap knows about a data folder (read, check, summarise, write).

- :mod:`~riskcap.data.dates`: where the data end, and the index dates that default from it.
"""
