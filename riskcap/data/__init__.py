"""The data seam: everything riskcap knows about a data folder (read, check, summarise, write).

- :mod:`~riskcap.data.read`: the one reader of contract tables, whole or one ``person_id``
  range (:class:`~riskcap.data.read.PersonRange`), with the one "cannot read" error.
- :mod:`~riskcap.data.parse`: problems, and tables parsed to the contract's types.
- :mod:`~riskcap.data.check`: the row checks of each table.
- :mod:`~riskcap.data.load`: read, parse and check a folder or one range of it; reject or quarantine.
- :mod:`~riskcap.data.summary`: what a load read, found wrong, used and quarantined.
- :mod:`~riskcap.data.dates`: where the data end, and the index dates that default from it.
- :mod:`~riskcap.data.scores`: the one reader of a scores file (``riskcap score``'s output).
- :mod:`~riskcap.data.write`: atomic writers, and what files people open must respect:
  person-level files owner-only, no text a spreadsheet would run as a formula.
"""
