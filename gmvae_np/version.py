"""The package version, in a module of its own: any module reads it without importing the package."""
__version__ = "0.1.0"
