"""Checks of the code's shape that the linters do not have (run by `make lint`)."""
