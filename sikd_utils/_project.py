"""The repository's address and the package version: the one place both are written.

``scripts/sync_notebooks.py`` copies them into every notebook's Colab badge and install cell and into
``_config.yml``; ``pyproject.toml`` reads the version from here; tests fail when any copy disagrees.
A release: change ``VERSION``, run ``make sync-notebooks``, commit, tag ``v<VERSION>`` and push the tag.
Keep this file plain assignments of string literals (setuptools reads it without importing).
"""

URL = "https://github.com/sikd-book/sikd-book"  # placeholder organisation until the book is published
VERSION = "0.1.0"
REPOSITORY = URL.removeprefix("https://github.com/")  # "owner/name"
TAG = "v" + VERSION  # the git tag the install cell installs and the Colab badges open
