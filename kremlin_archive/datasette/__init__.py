"""Datasette on the archive: `serve` builds the instance; metadata.yml, templates/ and plugins/
are its customisations."""
