"""``python -m medfw``: the medfw command line."""

from medfw.cli import run

if __name__ == "__main__":
    run()
