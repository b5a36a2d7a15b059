"""`python -m keel.gateway serve|account-create ...`: what `keel serve` and `keel account create` exec."""

from keel.gateway.commands import app

if __name__ == "__main__":
    app()
