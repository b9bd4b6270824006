"""Generic loaders so users can debias their own images: ``image_folder`` and ``csv``.

``image_folder`` — a class-per-folder tree, optionally split into ``train/``, ``val/`` (or ``valid/``),
``test/``; the bias label comes from a sub-folder level, a CSV, or is absent::

    root/[train|val|test/]<class>/<bias>/<file>     bias_from="subfolder" (default)
    root/[train|val|test/]<class>/<file>            bias_from="csv" (bias_csv: path,bias) or "none"

Class ids are the sorted class-folder names of the training tree; bias ids are the sorted names of all
bias sub-folders (or CSV bias values). Without split folders, rows get a deterministic random
train/val/test assignment (``seed``, ``val_fraction``, ``test_fraction``). Inconsistent trees are errors:
files next to class folders, a class folder mixing files and bias folders, class folders in val/test that
train lacks, split folders mixed with other folders, empty class folders.

``csv`` — one row per image: ``path,target,bias[,split]``; ``path`` relative to ``image_root`` (default:
the CSV's folder). Integer labels are used as ids (``num_classes = max + 1``); other labels map to the
index of their sorted unique value. ``split`` holds ``train``/``val``/``valid``/``test`` or 0/1/2; without
that column the same seeded split as above is drawn.

For both, ``aligned_cells[y]`` = the majority bias value among training images of class ``y`` (ties →
lowest id), and ``bias_from="none"`` gives a single bias value (every cell aligned).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from debiaskit.data.base import DatasetSplits
from debiaskit.data.filecache import IMAGE_EXTENSIONS
from debiaskit.data.filesplits import (
    cache_options,
    check_files_exist,
    deterministic_split,
    file_split,
    majority_aligned_cells,
)
from debiaskit.data.registry import DATASETS, register_dataset
from debiaskit.errors import DataMissingError, DebiaskitError
from debiaskit.paths import resolve_data_dir

__all__ = ["absolute_path_options", "build_csv", "build_image_folder", "given_paths", "relocate_dataset"]

_SPLIT_NAMES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test",
                "0": "train", "1": "val", "2": "test"}
_SPLIT_ORDER = ("train", "val", "test")


def _is_image(p: Path) -> bool:
    return p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")


def _subdirs(p: Path) -> list[Path]:
    return sorted(d for d in p.iterdir() if d.is_dir() and not d.name.startswith("."))


def _stray_files(p: Path) -> list[Path]:
    return sorted(f for f in p.iterdir() if _is_image(f))


def _images_under(p: Path) -> list[Path]:
    return sorted(f for f in p.rglob("*") if _is_image(f))


def _show(paths: list[Path], root: Path, n: int = 5) -> str:
    s = ", ".join(str(p.relative_to(root)) for p in paths[:n])
    return s + (f" and {len(paths) - n} more" if len(paths) > n else "")


def _scan_split(split_dir: Path, root: Path, bias_from: str) -> list[tuple[Path, str, str | None]]:
    """``(file, class name, bias name or None)`` rows of one split folder, validating its structure."""
    stray = _stray_files(split_dir)
    classes = _subdirs(split_dir)
    if stray:
        raise DebiaskitError(
            f"image_folder: image files directly in {split_dir} ({_show(stray, root)}); every image must be in a "
            "class folder <class>/<file>"
        )
    if not classes:
        raise DataMissingError(f"image_folder: no class folders in {split_dir}")
    rows: list[tuple[Path, str, str | None]] = []
    for c in classes:
        if bias_from == "subfolder":
            loose = _stray_files(c)
            bias_dirs = _subdirs(c)
            if not bias_dirs:
                raise DebiaskitError(
                    f"image_folder: class folder {c.relative_to(root)} has no bias sub-folders; use the layout "
                    "<class>/<bias>/<file>, or bias_from='csv' / 'none'"
                )
            if loose:
                raise DebiaskitError(
                    f"image_folder: class folder {c.relative_to(root)} mixes image files ({_show(loose, root)}) with "
                    "bias folders; with bias_from='subfolder' every image must be in <class>/<bias>/<file>"
                )
            for b in bias_dirs:
                files = _images_under(b)
                rows += [(f, c.name, b.name) for f in files]
        else:
            files = _images_under(c)
            if not files:
                raise DataMissingError(f"image_folder: class folder {c.relative_to(root)} holds no image files")
            rows += [(f, c.name, None) for f in files]
    return rows


def _name_ids(values: list[str]) -> tuple[list[str], dict[str, int]]:
    names = sorted(set(values))
    return names, {n: i for i, n in enumerate(names)}


def resolve_bias_csv(bias_csv: str | Path, root: Path) -> Path:
    """The bias CSV of an image tree: an absolute path as given; a relative one in ``root`` first, else the cwd."""
    p = Path(bias_csv).expanduser()
    if p.is_absolute():
        return p
    for cand in (root / p, p):
        if cand.is_file():
            return cand
    return root / p


def _read_bias_csv(path: Path, root: Path) -> dict[str, str]:
    import pandas as pd

    if not path.is_file():
        raise DataMissingError(f"image_folder: bias_csv {path} not found")
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in ("path", "bias") if c not in df.columns]
    if missing:
        raise DebiaskitError(f"image_folder: {path} lacks column(s) {', '.join(missing)}; found {', '.join(df.columns)}")
    return {str(Path(p).as_posix()): str(b) for p, b in zip(df["path"], df["bias"])}


def _assemble(
    dataset: str,
    rows_by_split: dict[str, tuple[list[Path], np.ndarray, np.ndarray]],
    *,
    num_classes: int,
    num_bias: int,
    class_names: list[str],
    bias_names: list[str],
    cache: dict,
    info: dict,
) -> DatasetSplits:
    if "train" not in rows_by_split or not len(rows_by_split["train"][0]):
        raise DebiaskitError(f"{dataset}: the training split is empty")
    _, t_tr, b_tr = rows_by_split["train"]
    aligned = majority_aligned_cells(torch.as_tensor(t_tr), torch.as_tensor(b_tr), num_classes, num_bias)
    out = {}
    for s in _SPLIT_ORDER:
        if s not in rows_by_split or not len(rows_by_split[s][0]):
            continue
        files, t, b = rows_by_split[s]
        out[s] = file_split(files, t, b, dataset=dataset, split=s, num_classes=num_classes, num_bias=num_bias,
                            aligned_cells=aligned, cache=cache, class_names=class_names, bias_names=bias_names,
                            info=dict(info))
    return DatasetSplits(out, info={"name": dataset, **info})


@register_dataset("image_folder")
def build_image_folder(
    *,
    data_dir: str | None = None,
    bias_from: str = "subfolder",
    bias_csv: str | None = None,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
    resolution: int = 64,
    crop: str = "none",
    on_error: str = "fail",
    progress: bool = True,
    num_workers: int | None = None,
) -> DatasetSplits:
    """Build a biased dataset from a class-per-folder image tree (see the module docstring for the layout).

    Args:
        data_dir: the tree's root folder (default ``$DEBIASKIT_DATA``).
        bias_from: ``"subfolder"`` (``<class>/<bias>/<file>``), ``"csv"`` (``bias_csv``) or ``"none"``.
        bias_csv: CSV with columns ``path,bias`` (``path`` relative to the root, ``/``-separated). A relative
            ``bias_csv`` is looked up in the image root first, then in the current directory.
        val_fraction, test_fraction, seed: the deterministic split used when there are no split folders.
        resolution, crop, on_error, progress, num_workers: image-cache options.
    """
    if bias_from not in ("subfolder", "csv", "none"):
        raise DebiaskitError(f"image_folder: bias_from must be 'subfolder', 'csv' or 'none', got {bias_from!r}")
    if (bias_from == "csv") != (bias_csv is not None):
        raise DebiaskitError("image_folder: bias_csv is required with bias_from='csv' and only then")
    cache = cache_options(resolution=resolution, crop=crop, on_error=on_error, progress=progress,
                          num_workers=num_workers)
    root = resolve_data_dir(data_dir)
    if root is None:
        raise DataMissingError("image_folder: pass data_dir=<root of the image tree> (or set DEBIASKIT_DATA)")
    if not root.is_dir():
        raise DataMissingError(f"image_folder: data_dir {root} is not a folder; pass data_dir=<root of the image tree>")
    top = _subdirs(root)
    split_dirs = [d for d in top if d.name.lower() in ("train", "val", "valid", "validation", "test")]
    if split_dirs:
        others = [d.name for d in top if d not in split_dirs]
        if others:
            raise DebiaskitError(
                f"image_folder: {root} mixes split folders ({', '.join(d.name for d in split_dirs)}) with other "
                f"folders ({', '.join(others)}); use either <split>/<class>/... or <class>/... throughout"
            )
        if _stray_files(root):
            raise DebiaskitError(f"image_folder: image files directly in {root}: {_show(_stray_files(root), root)}")
        by_split = {_SPLIT_NAMES[d.name.lower()]: d for d in split_dirs}
        if len(by_split) != len(split_dirs):
            raise DebiaskitError(f"image_folder: {root} has both val/ and valid/ (or validation/) folders; keep one")
        if "train" not in by_split:
            raise DataMissingError(f"image_folder: {root} has split folders but no train/ folder")
        scanned = {s: _scan_split(d, root, bias_from) for s, d in by_split.items()}
    else:
        scanned = {"all": _scan_split(root, root, bias_from)}
    ref = scanned.get("train", scanned.get("all"))
    class_names, class_id = _name_ids([c for _, c, _ in ref])
    for s, rows in scanned.items():
        extra = sorted({c for _, c, _ in rows} - set(class_names))
        if extra:
            raise DebiaskitError(
                f"image_folder: class folder(s) {', '.join(extra)} in {s}/ do not exist in train/ "
                f"(train classes: {', '.join(class_names)}); every split must use the training classes"
            )
    if bias_from == "csv":
        table = _read_bias_csv(resolve_bias_csv(bias_csv, root), root)
        lacking = [f for rows in scanned.values() for f, _, _ in rows if f.relative_to(root).as_posix() not in table]
        if lacking:
            raise DebiaskitError(f"image_folder: {len(lacking)} image(s) have no row in {bias_csv}: {_show(lacking, root)}")
        scanned = {s: [(f, c, table[f.relative_to(root).as_posix()]) for f, c, _ in rows] for s, rows in scanned.items()}
    if bias_from == "none":
        bias_names, bias_id = ["none"], {None: 0}
    else:
        bias_names, bias_id = _name_ids([b for rows in scanned.values() for _, _, b in rows])
    rows_by_split: dict[str, tuple[list[Path], np.ndarray, np.ndarray]] = {}
    for s, rows in scanned.items():
        files = [f for f, _, _ in rows]
        t = np.asarray([class_id[c] for _, c, _ in rows], np.int64)
        b = np.asarray([bias_id[x] for _, _, x in rows], np.int64)
        if s == "all":
            assign = deterministic_split(len(files), seed=seed, val_fraction=val_fraction, test_fraction=test_fraction)
            for code, name in enumerate(_SPLIT_ORDER):
                idx = np.flatnonzero(assign == code)
                rows_by_split[name] = ([files[i] for i in idx], t[idx], b[idx])
        else:
            rows_by_split[s] = (files, t, b)
    info = {"root": str(root), "bias_from": bias_from, "split_folders": bool(split_dirs), "train_augment": {"flip": True}}
    if not split_dirs:
        info.update({"seed": seed, "val_fraction": val_fraction, "test_fraction": test_fraction})
    return _assemble("image_folder", rows_by_split, num_classes=len(class_names), num_bias=len(bias_names),
                     class_names=class_names, bias_names=bias_names, cache=cache, info=info)


def _encode(values: np.ndarray, column: str, path: Path) -> tuple[np.ndarray, list[str]]:
    """Integer labels stay as ids (names '0'..'max'); other labels map to sorted unique names."""
    vals = [str(v).strip() for v in values]
    if any(v == "" for v in vals):
        raise DebiaskitError(f"csv: column {column!r} of {path} has empty values")
    try:
        ints = np.asarray([int(v) for v in vals], np.int64)
    except ValueError:
        names, ids = _name_ids(vals)
        return np.asarray([ids[v] for v in vals], np.int64), names
    if len(ints) and ints.min() < 0:
        raise DebiaskitError(f"csv: column {column!r} of {path} has negative integer labels")
    k = int(ints.max()) + 1 if len(ints) else 0
    return ints, [str(i) for i in range(k)]


@register_dataset("csv")
def build_csv(
    *,
    path: str | None = None,
    image_root: str | None = None,
    data_dir: str | None = None,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
    resolution: int = 64,
    crop: str = "none",
    on_error: str = "fail",
    progress: bool = True,
    num_workers: int | None = None,
) -> DatasetSplits:
    """Build a biased dataset from a CSV ``path,target,bias[,split]`` (see the module docstring).

    Args:
        path: the CSV file.
        image_root: folder the ``path`` column is relative to (default: the CSV's folder).
        data_dir: folder a relative ``path`` is looked up in when it is not found as given (default
            ``$DEBIASKIT_DATA``), so ``--data-dir`` works as for the other datasets.
        val_fraction, test_fraction, seed: the deterministic split used when there is no ``split`` column.
        resolution, crop, on_error, progress, num_workers: image-cache options.
    """
    import pandas as pd

    if not path:
        raise DebiaskitError("csv: pass path=<CSV file with columns path,target,bias[,split]>")
    csv_path = Path(path).expanduser()
    base = resolve_data_dir(data_dir)
    if not csv_path.is_file() and not csv_path.is_absolute() and base is not None and (base / csv_path).is_file():
        csv_path = base / csv_path
    if not csv_path.is_file():
        raise DataMissingError(f"csv: file not found: {csv_path}")
    cache = cache_options(resolution=resolution, crop=crop, on_error=on_error, progress=progress,
                          num_workers=num_workers)
    try:
        df = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    except Exception as e:  # noqa: BLE001
        raise DebiaskitError(f"csv: {csv_path} is not a readable CSV ({type(e).__name__}: {e})") from None
    missing = [c for c in ("path", "target", "bias") if c not in df.columns]
    if missing:
        raise DebiaskitError(
            f"csv: {csv_path} lacks column(s) {', '.join(missing)}; found: {', '.join(map(str, df.columns))}"
        )
    if not len(df):
        raise DebiaskitError(f"csv: {csv_path} has no rows")
    root = Path(image_root).expanduser() if image_root else csv_path.parent
    files = [root / p for p in df["path"]]
    check_files_exist(files, dataset="csv", where=root)
    t, class_names = _encode(df["target"].to_numpy(), "target", csv_path)
    b, bias_names = _encode(df["bias"].to_numpy(), "bias", csv_path)
    if "split" in df.columns:
        raw = [str(v).strip().lower() for v in df["split"]]
        bad = sorted({v for v in raw if v not in _SPLIT_NAMES})
        if bad:
            raise DebiaskitError(
                f"csv: unknown split value(s) {', '.join(bad)} in {csv_path}; use train/val/valid/test or 0/1/2"
            )
        codes = np.asarray([_SPLIT_ORDER.index(_SPLIT_NAMES[v]) for v in raw], np.int64)
    else:
        codes = deterministic_split(len(df), seed=seed, val_fraction=val_fraction, test_fraction=test_fraction)
    rows_by_split = {}
    for code, name in enumerate(_SPLIT_ORDER):
        idx = np.flatnonzero(codes == code)
        rows_by_split[name] = ([files[i] for i in idx], t[idx], b[idx])
    info = {"csv": str(csv_path), "image_root": str(root), "split_column": "split" in df.columns,
            "train_augment": {"flip": True}}
    if "split" not in df.columns:
        info.update({"seed": seed, "val_fraction": val_fraction, "test_fraction": test_fraction})
    return _assemble("csv", rows_by_split, num_classes=len(class_names), num_bias=len(bias_names),
                     class_names=class_names, bias_names=bias_names, cache=cache, info=info)


build_image_folder.path_options = {"data_dir": ("",), "bias_csv": ("data_dir", "")}  # type: ignore[attr-defined]
build_csv.path_options = {"path": ("", "data_dir"), "image_root": ("",), "data_dir": ("",)}  # type: ignore[attr-defined]


# -- paths in run configs ---------------------------------------------------------------------------------
#: path-valued options of the built-in datasets and the folders a relative value is looked up in, in order
#: ("" = the current directory, else another option of the same dataset); builders may declare their own
#: ``path_options`` attribute instead
DEFAULT_PATH_OPTIONS: dict[str, tuple[str, ...]] = {"data_dir": ("",), "image_root": ("",), "frost_dir": ("",)}

#: (dataset, option, absolute path) -> the text the user gave, for the run record
_GIVEN: dict[tuple[str, str, str], str] = {}


def _path_options(name: str) -> dict[str, tuple[str, ...]]:
    builder = DATASETS.get(name)
    return dict(getattr(builder, "path_options", None) or DEFAULT_PATH_OPTIONS)


def absolute_path_options(dataset: dict) -> dict:
    """A dataset config section with every path option made absolute and resolved.

    A relative path is looked up in the folders its builder declares (``image_folder``'s ``bias_csv`` in the
    image root first, ``csv``'s ``path`` in the current directory, then ``data_dir``); the first place where
    it exists wins, else the first place is used (so an error names an absolute path). The text the user gave
    is remembered and recorded in the run's ``result.json`` (``provenance.paths_given``).
    """
    name = dataset.get("name")
    if not name:
        return dict(dataset)
    out = dict(dataset)
    opts = _path_options(name)
    # options other paths are relative to are resolved first
    order = sorted(opts, key=lambda k: any(b for b in opts[k]))
    for key in order:
        value = out.get(key)
        if not isinstance(value, str) or not value:
            continue
        p = Path(value).expanduser()
        if not p.is_absolute():
            bases = []
            for b in opts[key]:
                if b == "":
                    base: Path | None = Path.cwd()
                elif isinstance(out.get(b), str) and out.get(b):
                    base = Path(out[b])
                else:  # an unset data_dir means $DEBIASKIT_DATA
                    base = resolve_data_dir(None) if b == "data_dir" else None
                if base is not None:
                    bases.append(base / p)
            p = next((c for c in bases if c.exists()), bases[0] if bases else Path.cwd() / p)
        resolved = str(p.resolve())
        if resolved != value:
            _GIVEN[(name, key, resolved)] = value
        out[key] = resolved
    return out


def given_paths(dataset: dict) -> dict[str, str]:
    """``{option: text the user gave}`` for the path options :func:`absolute_path_options` rewrote."""
    name = dataset.get("name")
    return {k: _GIVEN[(name, k, v)] for k, v in dataset.items() if isinstance(v, str) and (name, k, v) in _GIVEN}


def relocate_dataset(dataset: dict, data_dir: str | Path) -> dict:
    """The dataset config section with its data moved to ``data_dir`` (``predict`` / ``audit model --data-dir``).

    ``data_dir`` replaces the recorded data folder; every other path option that lay inside the old folder
    (for ``csv`` without a ``data_dir``: the CSV's folder) is moved along with it, keeping its relative part.
    Paths outside it are kept. The run's data fingerprint still guards against different data.
    """
    name = dataset.get("name")
    new_root = Path(data_dir).expanduser().resolve()
    if not new_root.is_dir():
        raise DebiaskitError(f"--data-dir {data_dir} is not a folder")
    opts = _path_options(name) if name else dict(DEFAULT_PATH_OPTIONS)
    out = dict(dataset)
    old = out.get("data_dir")
    if not old and isinstance(out.get("path"), str) and "path" in opts:
        old = str(Path(out["path"]).parent)
    for key in opts:
        value = out.get(key)
        if key == "data_dir" or not isinstance(value, str) or not old:
            continue
        try:
            rel = Path(value).relative_to(old)
        except ValueError:
            continue
        out[key] = str(new_root / rel)
    if "data_dir" in opts or "data_dir" in out:
        out["data_dir"] = str(new_root)
    return out
