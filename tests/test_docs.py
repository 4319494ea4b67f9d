"""Documentation ships with the code: every asset names its guide in docs/, every link resolves, and
nothing points at a file users do not have."""
import re
from pathlib import Path

import pytest

from ace_assets.graph import all_assets, guide_for

REPO = Path(__file__).resolve().parents[1]
DOCS = sorted((REPO / "docs").glob("*.md"))
USER_FACING = [REPO / "README.md", *DOCS, *sorted(p for pkg in ("ace_neuro", "ace_assets", "resources", "sensors")
                                                  for p in (REPO / pkg).rglob("*.py"))]
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def test_every_asset_description_names_a_guide_that_exists():
    for asset in all_assets():
        for key, spec in asset.specs_by_key.items():
            page = guide_for(key.to_user_string())
            assert (REPO / "docs" / page).exists(), f"{key.to_user_string()}: docs/{page} is missing"
            assert f"Guide: docs/{page}" in spec.description


@pytest.mark.parametrize("page", [REPO / "README.md", *DOCS], ids=lambda p: p.name)
def test_every_relative_link_resolves(page):
    for target in LINK.findall(page.read_text(encoding="utf-8")):
        if re.match(r"[a-z]+:", target):  # http(s):, mailto:, data:
            continue
        assert (page.parent / target).exists(), f"{page.name} links to {target}, which is not in the repository"


def test_nothing_points_at_the_internal_contract():
    for path in USER_FACING:
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"\bSPEC\b|SPEC\.md|DESIGN\.md", text), f"{path.relative_to(REPO)} cites a file users lack"
