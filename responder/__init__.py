"""responder: crisis-intervention alert responder."""

__version__ = "0.1.0"
