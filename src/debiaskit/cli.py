"""The ``debiaskit`` command line.

Sub-commands live in their own modules (``debiaskit.commands.*``); each module defines
``register(subparsers)`` which adds its parsers and sets ``func`` on them, and imports what it needs at module
level. :data:`COMMANDS` names the module and the one-line help of every sub-command: ``debiaskit --help`` lists
them without importing any command module, and a run imports only the module of the sub-command given
(:func:`_load_command`, the single lazy import of the CLI). Errors the user can fix are raised as
:class:`~debiaskit.errors.DebiaskitError` and printed as one ``error:`` line with exit status 2.

One handler in :func:`main` covers every command: besides ``DebiaskitError`` it maps ``OSError`` (missing
files, permissions, read-only file systems, a full disk ...), undecodable text, invalid YAML / JSON and
Ctrl-C (exit 130) to one line; ``debiaskit --debug COMMAND ...`` shows the traceback instead. Warnings are
printed as one ``warning:`` line. ``--strict-data`` sets ``DEBIASKIT_STRICT_DATA=1`` (no offline stand-ins).
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys
import warnings
from collections.abc import Sequence
from typing import Any

from debiaskit import __version__
from debiaskit.errors import DebiaskitError

#: every sub-command: name -> (module that registers it, one-line help shown by ``debiaskit --help``), in the
#: order of the listing. A module may register several names (``sweep`` + ``collect``, ``methods`` + ``models``);
#: the help text must equal the one the module registers (``tests/cli/test_cli_dispatch.py`` checks it).
COMMANDS: dict[str, tuple[str, str]] = {
    "datasets": ("debiaskit.commands.datasets", "list datasets and show their bias cards"),
    "methods": ("debiaskit.commands.methods",
                "list the training methods, their hyper-parameters and the selection rules"),
    "models": ("debiaskit.commands.methods", "list the models (built-in, backbones by prefix, plugins)"),
    "train": ("debiaskit.commands.train", "train one method on one dataset"),
    "sweep": ("debiaskit.commands.sweep", "run a grid of training runs (resumable)"),
    "collect": ("debiaskit.commands.sweep",
                "aggregate finished runs (run directories or records) into mean ± std tables"),
    "demo": ("debiaskit.commands.demo", "train on Colored MNIST (5%% conflicting) and show how biased the model is"),
    "generative": ("debiaskit.commands.generative", "train / inspect the small generator used by latent_aug"),
    "augment": ("debiaskit.commands.augment",
                "GAN latent augmentation: hallucinated labels, latent hyperplanes, paired z' (CVPR 2021)"),
    "audit": ("debiaskit.commands.audit", "audit a model's predictions, labels or representations for bias"),
    "predict": ("debiaskit.commands.predict",
                "write a trained run's predictions on a split as CSV (for `audit predictions`)"),
    "report": ("debiaskit.commands.report",
               "write a self-contained HTML report for a run, sweep, records folder or audit folder"),
}

#: options of ``debiaskit`` itself (none takes a value), skipped when looking for the sub-command's name
_GLOBAL_FLAGS = ("--debug", "--strict-data")


def _load_command(module: str) -> Any:
    """Import a command module: the CLI's one lazy import, so only the sub-command that runs is loaded."""
    return importlib.import_module(module)


def _command_name(argv: Sequence[str]) -> str | None:
    """The sub-command named in ``argv`` (the first word after the global flags), or ``None``."""
    for a in argv:
        if a in _GLOBAL_FLAGS:
            continue
        return None if a.startswith("-") else a
    return None


class _Parser(argparse.ArgumentParser):
    """argparse prints usage + error and exits 2; keep that, but on one line."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"error: {self.prog}: {message}\n")


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The ``debiaskit`` parser; the arguments of only the sub-command named in ``argv`` (``None``: of all).

    The other sub-commands get a bare parser carrying their help line, so ``debiaskit --help`` and a wrong
    command name still list every sub-command without importing its module.
    """
    parser = _Parser(prog="debiaskit", description="Measure and mitigate bias in image classifiers.")
    parser.add_argument("--version", action="version", version=f"debiaskit {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of an error instead of one `error:` line")
    parser.add_argument("--strict-data", action="store_true",
                        help="refuse to fall back to smaller offline stand-ins of a dataset (sets DEBIASKIT_STRICT_DATA=1)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    wanted = None if argv is None else COMMANDS.get(_command_name(argv) or "", (None, ""))[0]
    for name, (module, help_text) in COMMANDS.items():
        if name in sub.choices:  # registered together with an earlier name of the same module
            continue
        if argv is None or module == wanted:
            _load_command(module).register(sub)
        else:
            sub.add_parser(name, help=help_text)
    return parser


def _apply_thread_setting() -> None:
    """``DEBIASKIT_NUM_THREADS`` caps torch's intra-op threads (useful on busy or shared machines)."""
    n = os.environ.get("DEBIASKIT_NUM_THREADS")
    if n:
        try:
            k = int(n)
        except ValueError:
            raise DebiaskitError(f"DEBIASKIT_NUM_THREADS must be a positive integer, got {n!r}") from None
        if k < 1:
            raise DebiaskitError(f"DEBIASKIT_NUM_THREADS must be a positive integer, got {n!r}")
        import torch

        torch.set_num_threads(k)


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


_OS_REASONS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EISDIR: "is a directory (a file was expected)",
    errno.ENOTDIR: "not a directory (a part of the path is a file)",
    errno.ENOENT: "no such file or directory",
    errno.EEXIST: "already exists",
    errno.ENAMETOOLONG: "file name too long",
    errno.EMFILE: "too many open files",
}


def describe_os_error(e: OSError) -> str:
    """One line for an ``OSError``: what went wrong and the file(s) involved."""
    reason = _OS_REASONS.get(e.errno or -1) or (e.strerror or type(e).__name__)
    files = [str(f) for f in (e.filename, e.filename2) if f is not None]
    if not files:
        return reason if e.errno in _OS_REASONS else _one_line(e)
    return f"{' -> '.join(files)}: {reason}"


def describe_exception(e: BaseException) -> str | None:
    """The one-line ``error:`` message for the exceptions the CLI maps; ``None`` for anything else (a bug)."""
    import json

    import yaml

    if isinstance(e, DebiaskitError):
        return str(e)
    if isinstance(e, OSError):
        return describe_os_error(e)
    if isinstance(e, UnicodeDecodeError):
        return f"a file is not valid {e.encoding} text ({e.reason} at byte {e.start}); check the input files"
    if isinstance(e, yaml.YAMLError):
        first = (str(e).strip().splitlines() or ["syntax error"])[0]
        mark = getattr(e, "problem_mark", None)
        where = f" ({mark.name}, line {mark.line + 1})" if mark is not None else ""
        return f"invalid YAML{where}: {_one_line(first)}"
    if isinstance(e, json.JSONDecodeError):
        return f"invalid JSON: {e.msg} (line {e.lineno}, column {e.colno})"
    return None


def _format_warning(message, category, filename, lineno, line=None) -> str:  # noqa: ANN001 - warnings hook
    return f"warning: {_one_line(message)}\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (2 for an error the user can fix, 130 for Ctrl-C)."""
    warnings.formatwarning = _format_warning
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    debug = bool(getattr(args, "debug", False))
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    strict_before = os.environ.get("DEBIASKIT_STRICT_DATA")
    if getattr(args, "strict_data", False):
        os.environ["DEBIASKIT_STRICT_DATA"] = "1"  # inherited by sweep workers
    try:
        _apply_thread_setting()
        rc = args.func(args)
    except KeyboardInterrupt:
        if debug:
            raise
        print("interrupted: finished work is saved; run the same command again to resume", file=sys.stderr)
        return 130
    except Exception as e:  # mapped to one line below; anything unexpected (a bug) keeps its traceback
        msg = describe_exception(e)
        if msg is None or debug:
            raise
        if isinstance(e, BrokenPipeError):  # `debiaskit collect ... | head`
            return 1
        print(f"error: {msg}", file=sys.stderr)
        return 2
    finally:  # main() may be called in-process (tests, notebooks): leave the environment as it was
        if strict_before is None:
            os.environ.pop("DEBIASKIT_STRICT_DATA", None)
        else:
            os.environ["DEBIASKIT_STRICT_DATA"] = strict_before
    return int(rc or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
