"""The sidebar's settings as the Settings Editor shows them: the token is masked and its help names a real command."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from itertools import takewhile
from pathlib import Path

SCHEMA = Path(__file__).resolve().parents[2] / "labextension" / "schema" / "plugin.json"


def test_the_token_is_a_password_field():
    token = json.loads(SCHEMA.read_text())["properties"]["registryToken"]
    assert token["type"] == "string" and token["format"] == "password"  # rjsf renders it as <input type=password>


def test_every_command_the_settings_help_names_exists():
    properties = json.loads(SCHEMA.read_text())["properties"]
    commands = [c for p in properties.values() for c in re.findall(r"`(bento-jupyter [^`]*)`", p["description"])]
    assert commands, "the help names the command that makes a token"
    for command in commands:
        words = list(takewhile(lambda w: not w.startswith("-"), command.split()[1:]))  # the subcommand, no options
        done = subprocess.run(
            [sys.executable, "-m", "bento_jupyter.cli", *words, "--help"], capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, f"{command}: {done.stderr}"
