"""``debiaskit report``: one self-contained HTML file for a run, a sweep, a records folder or an audit folder.

The page is rendered from Jinja2 templates shipped with the package (``debiaskit/report/templates``), with
the CSS inline and every figure embedded as a ``data:`` URI: it opens from a file, offline, with no network
request (no CDN, no web fonts, no scripts). See ``docs/report.md``.

>>> from debiaskit.report.html import write_report
>>> write_report("runs/vanilla")                     # doctest: +SKIP
PosixPath('runs/vanilla/report.html')
"""

from __future__ import annotations

import datetime as _dt
import html as _html
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from debiaskit import __version__
from debiaskit.errors import DebiaskitError
from debiaskit.experiments.records import load_runs
from debiaskit.io import write_text
from debiaskit.progress import Progress
from debiaskit.report.audits import audit_context, audit_kind, read_audit
from debiaskit.report.examples import examples_context
from debiaskit.report.runs import partial_run, runs_context

__all__ = ["build_context", "detect", "render_html", "try_write_report", "write_report"]


def _env() -> Any:
    import jinja2

    return jinja2.Environment(
        loader=jinja2.PackageLoader("debiaskit.report", "templates"),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html", "j2"), default=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def detect(path: str | Path) -> str:
    """What ``path`` holds: ``audit``, ``run`` (one run directory, finished or not) or ``runs`` (many runs)."""
    p = Path(path)
    if not p.exists():
        raise DebiaskitError(f"{p}: no such file or directory")
    if p.is_file():
        if p.name == "report.json":
            return "audit"
        return "runs"
    if (p / "report.json").is_file() and not (p / "result.json").is_file():
        return "audit"
    if (p / "config.yaml").is_file() and (p / "metrics.jsonl").is_file():
        return "run"
    return "runs"


def build_context(path: str | Path | Sequence[str | Path], *, selection: Sequence[str] | None = None,
                  rule: str | None = None, metric: str | None = None, examples: bool = False,
                  device: str = "cpu", data_dir: str | Path | None = None) -> dict[str, Any]:
    """Everything the templates need for the report on ``path`` (see :func:`write_report`).

    Several paths (e.g. the folders given to ``debiaskit collect``) are reported on together as runs.
    ``examples``: add the example-image grids of a finished run directory (:mod:`debiaskit.report.examples`;
    rebuilds the run's data, on ``device``, from ``data_dir`` if given).
    """
    if not isinstance(path, (str, Path)):
        paths = [Path(x) for x in path]
        if len(paths) != 1:
            for x in paths:
                if not x.exists():
                    raise DebiaskitError(f"{x}: no such file or directory")
            runs = load_runs(paths)
            if not runs:
                raise DebiaskitError(f"no finished run (result.json or record) found under "
                                     f"{', '.join(map(str, paths))}")
            ctx = runs_context(runs, kind="records", root=None, selection=list(selection) if selection else None,
                               rule=rule, metric=metric)
            ctx.update(audits=[], source=", ".join(map(str, paths)), version=__version__, generated=_now())
            return ctx
        path = paths[0]
    p = Path(path)
    kind = detect(p)
    if kind == "audit":
        folder = p.parent if p.is_file() else p
        rep = read_audit(folder)
        if audit_kind(rep) is None:
            raise DebiaskitError(f"{folder / 'report.json'} is not a report written by `debiaskit audit`")
        ctx = audit_context(folder, rep)
    else:
        if kind == "run" and not (p / "result.json").is_file():
            pr = partial_run(p)
            runs = [pr] if pr is not None else []
        else:
            runs = load_runs([p])
        if not runs:
            raise DebiaskitError(f"{p} holds no finished run, run record, sweep or audit report "
                                 "(expected result.json, metrics.jsonl, *.json records or report.json)")
        label = "run" if len(runs) == 1 else ("sweep" if (p / "sweep.json").is_file() else "records")
        ctx = runs_context(runs, kind=label, root=p if p.is_dir() else None,
                           selection=list(selection) if selection else None, rule=rule, metric=metric)
        ctx["audits"] = _nested_audits(p) if kind == "run" else []
        if examples:
            _add_examples(ctx, p, kind, rule=rule, device=device, data_dir=data_dir)
    ctx.setdefault("title", str(p))
    ctx["source"] = str(p)
    ctx["version"] = __version__
    ctx["generated"] = _now()
    return ctx


def _now() -> str:
    return _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")


def _add_examples(ctx: dict[str, Any], p: Path, kind: str, *, rule: str | None, device: str,
                  data_dir: str | Path | None) -> None:
    """Example grids into a single-run context; what prevents them becomes a finding, not a failure."""
    if kind != "run" or "run" not in ctx or not (p / "result.json").is_file():
        ctx["findings"].append({"level": "info", "text": "Example images need a finished run directory (a record "
                                "holds no weights); none drawn."})
        return
    try:
        ex = examples_context(p, selection=rule, device=device, data_dir=data_dir)
    except DebiaskitError as e:
        ctx["findings"].append({"level": "warn", "text": f"Example images skipped: {e}"})
        return
    ctx["run"]["examples"] = ex["figures"]
    ctx["findings"].extend(ex["findings"])


def _nested_audits(run_dir: Path) -> list[dict[str, Any]]:
    """Audit folders inside a run directory (e.g. ``audit_leakage/`` of ``audit model``), rendered inline."""
    out = []
    for f in sorted(run_dir.glob("*/report.json")):
        try:
            rep = read_audit(f.parent)
        except DebiaskitError:
            continue
        if audit_kind(rep):
            ctx = audit_context(f.parent, rep)
            ctx["folder"] = f.parent.name
            out.append(ctx)
    return out


def render_html(ctx: dict[str, Any]) -> str:
    """Render a context from :func:`build_context` into the HTML page."""
    template = "audit.html.j2" if ctx.get("kind") == "audit" else "runs.html.j2"
    return _env().get_template(template).render(**ctx)


def write_report(path: str | Path | Sequence[str | Path], out: str | Path | None = None, *,
                 selection: Sequence[str] | None = None, rule: str | None = None, metric: str | None = None,
                 examples: bool = False, device: str = "cpu", data_dir: str | Path | None = None) -> Path:
    """Write the HTML report on ``path`` to ``out`` (default: ``report.html`` inside ``path``) atomically.

    ``path``: a run directory, a sweep directory, a records folder (or one record file), or an audit output
    folder; a list of paths reports on all their runs together. ``selection``: the rules to compare (default: those the runs were trained with); ``rule``: the rule
    whose step the summary and heat maps use (default: the runs' reported rule); ``metric``: the headline test
    metric (default ``unbiased_accuracy``, else ``mAP`` / ``accuracy``); ``examples``, ``device``, ``data_dir``: see
    :func:`build_context`. Returns the written file.
    """
    if out is None:
        one = path if isinstance(path, (str, Path)) else (list(path)[0] if len(list(path)) == 1 else None)
        if one is None:
            raise DebiaskitError("a report on several paths needs an output file (--out)")
        p = Path(one)
        out = (p.parent if p.is_file() else p) / "report.html"
    out = Path(out)
    if out.is_dir():
        raise DebiaskitError(f"--out {out} is a directory; give a file name such as {out / 'report.html'}")
    ctx = build_context(path, selection=selection, rule=rule, metric=metric, examples=examples, device=device,
                        data_dir=data_dir)
    return write_text(out, render_html(ctx))


def try_write_report(path: str | Path, out: str | Path, *, progress: Progress | None = None) -> Path | None:
    """:func:`write_report` for a command that has already written its own outputs (an audit's report.md/json).

    The HTML page is a view of those outputs: when it cannot be built (a :class:`DebiaskitError`) one
    ``warning:`` line goes to stderr, naming ``debiaskit report`` to retry, and ``None`` is returned instead of
    failing the command. ``progress``: an optional :class:`debiaskit.progress.Progress` that announces the step.
    """
    if progress is not None:
        progress.announce(f"writing {out}")
    try:
        return write_report(path, out)
    except DebiaskitError as e:
        print(f"warning: {out} not written ({e}); the other outputs are complete, retry with "
              f"`debiaskit report {path}`", file=sys.stderr)
        return None


def escape(text: Any) -> str:
    """HTML-escape ``text`` (for callers assembling snippets outside the templates)."""
    return _html.escape(str(text))
