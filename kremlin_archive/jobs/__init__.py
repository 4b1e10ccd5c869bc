"""Offline jobs: no network, no Scrapy. They read the WARC files or the database and write
the database or files."""
