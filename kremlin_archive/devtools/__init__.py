"""Tools for development and tests, not for production: the replay server."""
