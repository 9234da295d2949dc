"""splatops' front ends: the public verbs (:mod:`splatops.api`), the ``splatops`` CLI and the app."""

__version__ = "0.1.0"
