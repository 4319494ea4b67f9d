"""``python -m ace_neuro.params``: print the README's parameter table (``--text`` for the terminal listing);
``--write`` rewrites the generated tables of README.md and docs/ in place."""
import sys
from pathlib import Path

from .table import readme_section, text_listing, write_tables

if "--write" in sys.argv[1:]:
    for path in write_tables(Path(__file__).resolve().parents[2]):
        print(f"rewrote {path}")
else:
    print(text_listing() if "--text" in sys.argv[1:] else readme_section())
