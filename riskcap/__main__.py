"""``python -m riskcap``: the same as the ``riskcap`` command."""
from riskcap.cli import main

if __name__ == "__main__":
    main()
