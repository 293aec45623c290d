"""Themes are data shipped with the package, and the stylesheet holds no colour of its own."""

from __future__ import annotations

import re
import tomllib
from importlib import resources
from pathlib import Path

import pytest

from opsconsole.errors import ConfigError
from opsconsole.ui.themes import APP_VARIABLES, load_theme_file, shipped_themes, user_themes

REPO = Path(__file__).resolve().parents[1]


def test_dark_light_and_high_contrast_themes_ship_with_every_app_variable() -> None:
    themes = {t.name: t for t in shipped_themes()}
    assert {"opsconsole-dark", "opsconsole-light", "opsconsole-high-contrast"} <= set(themes)
    assert themes["opsconsole-dark"].dark and not themes["opsconsole-light"].dark
    for theme in themes.values():
        assert set(theme.variables) == set(APP_VARIABLES), theme.name


def test_themes_are_package_data_and_the_top_level_themes_dir_points_at_them() -> None:
    data = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "themes/*.toml" in data["tool"]["setuptools"]["package-data"]["opsconsole"]
    packaged = {p.name for p in resources.files("opsconsole").joinpath("themes").iterdir()}
    for link in (REPO / "themes").glob("*.toml"):
        assert link.name in packaged
        assert link.resolve() == (REPO / "opsconsole" / "themes" / link.name).resolve()


def test_the_stylesheet_uses_theme_variables_and_never_a_colour() -> None:
    css = (REPO / "opsconsole" / "ui" / "app.tcss").read_text()
    assert not re.search(r"#[0-9a-fA-F]{3,8}\b", css)
    assert not re.search(r"\b(rgb|hsl)a?\(", css)
    assert "$status-down" in css


def test_a_broken_user_theme_is_reported_with_its_file_and_key(tmp_path: Path) -> None:
    (tmp_path / "mine.toml").write_text('name = "mine"\n[colors]\nprimary = "not-a-colour"\n')
    (tmp_path / "typo.toml").write_text('name = "typo"\ncolours = {}\n')
    (tmp_path / "good.toml").write_text('name = "good"\n[colors]\nprimary = "#336699"\n')
    found = list(user_themes(tmp_path))
    errors = [str(f) for f in found if isinstance(f, ConfigError)]
    assert len(errors) == 2 and all("good.toml" not in e for e in errors)
    assert any("mine.toml: colors.primary" in e for e in errors)
    assert any("typo.toml: colours: unknown key" in e for e in errors)
    assert [f.name for f in found if not isinstance(f, ConfigError)] == ["good"]
    with pytest.raises(ConfigError, match=r"variables\.status-up"):
        bad = tmp_path / "var.toml"
        bad.write_text('name = "v"\n[colors]\nprimary = "red"\n[variables]\nstatus-up = "red"\n')
        load_theme_file(bad)
