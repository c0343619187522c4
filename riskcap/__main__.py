"""``python -m riskcap``: the same as the ``riskcap`` command."""
from riskcap.cli import run

if __name__ == "__main__":
    run()
