"""Packaging is declared in pyproject.toml; this file only exists for scrapyd.

scrapyd finds a project's settings module through the `scrapy` entry point of the egg that
`scrapyd-deploy` builds (`python setup.py bdist_egg`). Without a setup.py, scrapyd-deploy
writes its own, whose entry point setuptools ignores because pyproject.toml declares the
project; so the entry point is added here, at egg_info time, to whatever pyproject.toml says.
"""

from setuptools import setup
from setuptools.command.egg_info import egg_info

SCRAPY_ENTRY_POINT = "settings = kremlin_archive.settings"


class EggInfoWithScrapySettings(egg_info):
    def run(self):
        entry_points = dict(self.distribution.entry_points or {})
        scrapy = list(entry_points.get("scrapy", []))
        if SCRAPY_ENTRY_POINT not in scrapy:
            entry_points["scrapy"] = [*scrapy, SCRAPY_ENTRY_POINT]
        self.distribution.entry_points = entry_points
        super().run()


setup(cmdclass={"egg_info": EggInfoWithScrapySettings})
