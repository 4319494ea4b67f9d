"""``python -m ace_neuro.params``: print the README's parameter table (``--text`` for the terminal listing)."""
import sys

from .table import readme_section, text_listing

print(text_listing() if "--text" in sys.argv[1:] else readme_section())
