"""Realistic benchmark: the lab's front end on minisim recordings, scored with minisim's own metrics.

See ``bench/realistic/README.md``. Modules: ``catalogue`` (the recordings; standard library only),
``generate`` (minisim side, run by ``.venv-minisim/bin/python``), ``session`` and ``runner``
(project side), ``score_minisim`` (minisim side), ``make_fixture`` (the regression fixture).
Nothing here is imported by this ``__init__``: each side imports only what its venv has.
"""
