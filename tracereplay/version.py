"""The package version: a low module, so the store can record it without importing the package."""

__version__ = "0.2.0"

__all__ = ["__version__"]
