"""Private implementation of the public strategies; import from ``strategies``."""
