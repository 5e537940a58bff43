"""contextd-mcp: a memory that learns and a safe pair of hands for coding agents."""

__version__ = "0.1.0"
__all__ = ["__version__"]
