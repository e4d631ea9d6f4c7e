"""`python -m marketplace.agent`: see `marketplace.agent.cli`."""

from marketplace.agent.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
