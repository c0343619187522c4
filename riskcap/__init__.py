"""riskcap: risk stratification and Year of Care capitation for England's GP populations."""

__version__ = "0.1.0"
