"""Choosing a theme in the console saves it in config.toml and loses nothing else."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from opsconsole.config import load_config
from opsconsole.errors import ConfigError
from opsconsole.ui.persist import save_theme

REPO = Path(__file__).resolve().parents[1]


def test_saving_the_theme_changes_only_that_line_and_keeps_a_backup(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    original = (REPO / "config.toml").read_text().replace("example = true\n", "")
    path.write_text(original)
    backup = save_theme(path, "opsconsole-light")
    assert backup.read_text() == original
    new = path.read_text()
    assert load_config(str(path)).console.theme == "opsconsole-light"
    before = tomllib.loads(original)
    before["console"]["theme"] = "opsconsole-light"
    assert tomllib.loads(new) == before
    changed = [
        (a, b) for a, b in zip(original.splitlines(), new.splitlines(), strict=True) if a != b
    ]
    assert len(changed) == 1 and "opsconsole-light" in changed[0][1]
    assert "# a theme from themes/" in changed[0][1]  # the comment on that line stays


def test_a_config_without_a_theme_line_gets_one(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        '[servers.a]\nhost = "local"\n\n[services.s]\nservers = ["a"]\naccess_log = "/x.log"\n'
    )
    save_theme(path, "opsconsole-high-contrast")
    data = tomllib.loads(path.read_text())
    assert data["console"] == {"theme": "opsconsole-high-contrast"}
    assert data["services"]["s"]["access_log"] == "/x.log"


def test_an_invalid_config_is_not_rewritten(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[console]\ntheme = "x"\ntypo = 1\n')
    with pytest.raises(ConfigError, match="typo"):
        save_theme(path, "opsconsole-light")
    assert path.read_text() == '[console]\ntheme = "x"\ntypo = 1\n'
    assert not (tmp_path / "config.toml.bak").exists()
