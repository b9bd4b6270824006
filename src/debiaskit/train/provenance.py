"""Run provenance: where the method, dataset and model(s) of a run come from, and whether a process has them.

:func:`run_provenance` is recorded in ``result.json`` by the trainer (and by a sweep for each run);
:func:`check_provenance` is called before a recorded run is rebuilt (``load_run``, sweep workers) and names
a missing plugin or module in one line. The sources come from the registries'
:meth:`~debiaskit.registry.Registry.source` (built-in, plugin entry point, importable module, or a script).
"""

from __future__ import annotations

import importlib
from typing import Any

from debiaskit.data.generic import given_paths
from debiaskit.data.registry import DATASETS
from debiaskit.errors import DebiaskitError
from debiaskit.methods.registry import METHODS
from debiaskit.models.registry import MODELS
from debiaskit.registry import Registry

__all__ = ["check_provenance", "run_provenance"]


def _registries() -> dict[str, Registry[Any]]:
    return {"method": METHODS, "dataset": DATASETS, "model": MODELS}


def _config_names(cfg: dict[str, Any]) -> dict[str, list[str]]:
    hp = cfg.get("hparams") or {}
    models = [hp.get("model")] + [hp.get(k) for k in ("adv_model",) if hp.get(k)]
    ds = cfg.get("dataset") or {}
    return {
        "method": [cfg.get("method")] if cfg.get("method") else [],
        "dataset": [ds.get("name")] if isinstance(ds, dict) and ds.get("name") else [],
        "model": [m for m in models if isinstance(m, str) and m and m != "auto"],
    }


def run_provenance(cfg: dict[str, Any], *, built_models: list[str] | None = None) -> dict[str, Any]:
    """Where the method, dataset and model(s) of a resolved run config come from (recorded in ``result.json``).

    ``{"method": {name: source}, "dataset": {...}, "model": {...}}`` with each source an
    :class:`EntrySource` as a dict; prefix-resolved models (``torchvision:...``, ``python:...``) record their
    prefix. ``built_models``: the model names actually built (``auto`` resolved).
    """
    regs = _registries()
    names = _config_names(cfg)
    if built_models:
        names["model"] = sorted(set(names["model"]) | set(built_models))
    out: dict[str, Any] = {}
    for kind, ns in names.items():
        entries: dict[str, Any] = {}
        for n in ns:
            src = regs[kind].source(n)
            if src is not None:
                entries[n] = src.as_dict()
            elif ":" in n:
                entries[n] = {"origin": "prefix", "prefix": n.split(":", 1)[0]}
        out[kind] = entries
    given = given_paths(cfg.get("dataset") or {})
    if given:
        out["paths_given"] = given
    return out


def check_provenance(result: dict[str, Any] | None, config: dict[str, Any], *, where: str = "the run") -> None:
    """Make the entries a recorded run needs available, or raise one line naming what is missing.

    Entries registered by an importable module are imported again (so a model registered by ``mypkg.models``
    at run time works in a new process); a missing plugin or module, or an entry registered by a script
    (``__main__``), is a :class:`~debiaskit.errors.DebiaskitError` that names it.
    """
    recorded = (result or {}).get("provenance") or {}
    regs = _registries()
    for kind, names in _config_names(config).items():
        reg = regs[kind]
        for n in names:
            if n in reg or (":" in n and n.split(":", 1)[0] in reg.prefixes()):
                continue
            src = (recorded.get(kind) or {}).get(n) or {}
            origin, module = src.get("origin"), src.get("module")
            if origin == "plugin":
                dist = src.get("distribution") or "the plugin"
                failed = reg.failed_plugins().get(n)
                state = f"it is installed but {failed}" if failed else "it is not installed"
                raise DebiaskitError(
                    f"{where} uses {kind} {n!r} from the plugin {dist} (entry point {src.get('entry_point')}); "
                    f"{state}: pip install {dist}"
                )
            if origin == "main":
                raise DebiaskitError(
                    f"{where} uses {kind} {n!r}, registered by a script (__main__); a new process cannot rebuild it: "
                    f"move it into an importable module or declare it as a plugin ({reg.group!r} entry point)"
                )
            if origin == "module" and module:
                try:
                    importlib.import_module(module)
                except ImportError as e:
                    raise DebiaskitError(
                        f"{where} uses {kind} {n!r}, registered by module {module!r}, which cannot be imported "
                        f"({type(e).__name__}: {e}); install it or add it to PYTHONPATH"
                    ) from None
                if n in reg:
                    continue
                raise DebiaskitError(f"{where} uses {kind} {n!r}; importing {module!r} did not register it")
            reg.get(n)  # the registry's own one-line error (unknown name, failed plugin)
