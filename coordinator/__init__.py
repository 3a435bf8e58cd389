"""coordinator: a folder of logged-in browser profiles behind one OpenAI-compatible endpoint."""

__version__ = "0.1.0"
