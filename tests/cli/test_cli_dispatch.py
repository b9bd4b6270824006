"""The CLI imports a command module only when its sub-command runs; ``debiaskit --help`` imports none."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from debiaskit import cli


def _fresh(code: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=300)
    return json.loads(out.stdout.strip().splitlines()[-1])


_LOADED = ("import contextlib, io, json, sys\n"
           "from debiaskit import cli\n"
           "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
           "    cli.main({argv!r})\n"
           "print(json.dumps({{'commands': sorted(m for m in sys.modules if m.startswith('debiaskit.commands.')),\n"
           "                  'torch': 'torch' in sys.modules}}))")


def test_top_level_help_imports_no_command_module_and_no_torch():
    got = _fresh(_LOADED.format(argv=["--help"]))
    assert got == {"commands": [], "torch": False}


def test_a_sub_command_imports_only_its_own_module():
    got = _fresh(_LOADED.format(argv=["--debug", "models", "list"]))
    assert "debiaskit.commands.methods" in got["commands"]
    others = {m for _, (m, _) in cli.COMMANDS.items()} - {"debiaskit.commands.methods"}
    assert not others & set(got["commands"]), got["commands"]


def _sub_actions(parser: argparse.ArgumentParser) -> dict[str, str]:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {a.dest: a.help for a in sub._choices_actions}


def test_the_help_table_matches_what_the_modules_register():
    full = _sub_actions(cli.build_parser())  # argv=None: every module registers its parsers
    assert list(full) == list(cli.COMMANDS)
    assert full == {name: help_text for name, (_, help_text) in cli.COMMANDS.items()}
    # bare parsers (no module imported) list the same names and help in the same order
    assert _sub_actions(cli.build_parser([])) == full


def test_every_name_reaches_its_module_arguments():
    for name, (module, _) in cli.COMMANDS.items():
        parser = cli.build_parser([name, "--help"])
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        assert sub.choices[name]._actions[1:], f"{name}: {module} registered no arguments"  # beyond -h
