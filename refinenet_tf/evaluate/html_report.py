"""An evaluation as a web page: ``DIR/index.html`` and its pictures, viewable offline.

The page is plain HTML and CSS (no script, no remote font): a header saying what was evaluated and how,
the scores (plain and CRF side by side), per-class bars and a confusion heat map (:mod:`plots`), and the
worst and best images by their own mean IoU (:mod:`gallery`). Every number comes from the results dict
that ``results.json`` holds, so the two always agree.

Which files are the report's: ``index.html`` (its second line is :data:`MARKER`), the folder
``report_files/`` and, when no other results file is linked, ``results.json``. Nothing else in the folder
is touched or deleted. A folder whose ``index.html`` lacks the marker, or that holds ``report_files`` or
``results.json`` without a report's ``index.html``, is refused: they may be someone else's.
"""

from __future__ import annotations

import datetime
import html
import os
import re
import urllib.request
from collections.abc import Mapping, Sequence

import numpy as np
from PIL import Image

from refinenet_tf.description import ModelDescription
from refinenet_tf.errors import ConfigError, parameter
from refinenet_tf.evaluate import plots
from refinenet_tf.evaluate.gallery import ERROR_COLOURS, THUMBNAIL_SIDE, Gallery, GalleryImage
from refinenet_tf.evaluate.report import CLASS_SCORES, SUMMARY_SCORES, change, percent, write_results_json
from refinenet_tf.files import write_text_atomically
from refinenet_tf.version import __version__

INDEX = "index.html"
PICTURES = "report_files"
RESULTS = "results.json"
MARKER = "<!-- refinenet-tf evaluation report: this file and report_files/ are rewritten by the next report -->"
PANELS = ("image", "truth", "prediction", "errors")
_PANEL_TITLES = {"image": "image", "truth": "ground truth", "prediction": "prediction", "errors": "errors"}
_OWN_PICTURE = re.compile(r"^((classes|confusion)-(plain|crf)|(worst|best)-\d+-(image|truth|prediction|errors))\.png$")
_BRANCH_TITLES = {"plain": "without CRF", "crf": "with CRF"}
_STYLE = """
body { font-family: sans-serif; margin: 24px auto; max-width: 1240px; color: #1a1a1a; background: #fff; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2em; }
dl.run { display: grid; grid-template-columns: max-content 1fr; gap: 0.25em 1.2em; }
dl.run dt { font-weight: bold; } dl.run dd { margin: 0; overflow-wrap: anywhere; }
table { border-collapse: collapse; margin: 0.6em 0; } th, td { border: 1px solid #ccc; padding: 0.25em 0.7em; }
td.number { text-align: right; font-variant-numeric: tabular-nums; } th { background: #f2f2f2; }
.swatch { display: inline-block; width: 0.9em; height: 0.9em; border: 1px solid #333; margin-right: 0.35em;
          vertical-align: -0.1em; }
span.entry { margin-right: 1.1em; white-space: nowrap; }
.charts img { max-width: 100%; border: 1px solid #ddd; margin: 0.4em 0.4em 0.4em 0; }
.row { margin: 0.4em 0 1em; } .row figcaption.title { font-weight: bold; margin-bottom: 0.3em; }
.panels { display: flex; gap: 8px; flex-wrap: wrap; } .panels figure { margin: 0; text-align: center; }
.panels img { image-rendering: pixelated; border: 1px solid #999; display: block; }
.panels figcaption { font-size: 0.85em; color: #555; }
"""


def check_report(directory: str, writes_results: bool = True) -> None:
    """Refuse, before any work, a report without matplotlib or whose folder holds files it did not write."""
    plots.require_matplotlib()
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise ConfigError(f"{directory}: {parameter('report')} must be a folder, this is a file")
    index = os.path.join(directory, INDEX)
    if os.path.lexists(index):
        if not _written_by_us(index):
            raise ConfigError(f"{index} exists and is not a refinenet-tf report; choose another "
                              f"{parameter('report')} folder (nothing was written)")
        return
    names = (PICTURES, RESULTS) if writes_results else (PICTURES,)
    taken = [name for name in names if os.path.lexists(os.path.join(directory, name))]
    if taken:
        raise ConfigError(f"{os.path.join(directory, taken[0])} exists but the folder holds no report; the report "
                          f"would overwrite it, choose another {parameter('report')} folder (nothing was written)")


def write_report(directory: str, results: Mapping, description: ModelDescription, gallery: Gallery | None,
                 results_file: str | None = None) -> str:
    """Write the report of ``results`` (what results.json holds) into ``directory``; returns index.html's path.

    ``results_file`` is an already written results.json to link; without it the report writes its own.
    """
    check_report(directory, results_file is None)
    pictures = os.path.join(directory, PICTURES)
    try:
        os.makedirs(pictures, exist_ok=True)
        for name in os.listdir(pictures):
            if _OWN_PICTURE.match(name):
                os.remove(os.path.join(pictures, name))
    except OSError as error:
        raise ConfigError(f"{pictures}: cannot prepare the report folder ({error.strerror or error})") from None
    if results_file is None:
        results_file = os.path.join(directory, RESULTS)
        write_results_json(results_file, results)
    branches = _branches(results)
    names = description.names()
    colours = description.palette()
    sections = [_header(results, description, directory, results_file),
                _scores_section(branches, names, colours),
                _charts_section(directory, branches, names, colours)]
    if gallery is not None:
        sections.append(_gallery_section(directory, gallery, names, colours, "crf" in branches))
    title = f"Evaluation of {os.path.basename(str(_metadata(results).get('checkpoint', '')))}"
    page = "\n".join(["<!DOCTYPE html>", MARKER, '<html lang="en"><head><meta charset="utf-8">',
                      f"<title>{_text(title)}</title><style>{_STYLE}</style></head><body>",
                      f"<h1>{_text(title)}</h1>", *sections, "</body></html>", ""])
    index = os.path.join(directory, INDEX)
    try:
        write_text_atomically(index, page)
    except OSError as error:
        raise ConfigError(f"{index}: cannot write the report ({error.strerror or error})") from None
    return index


# --- sections --------------------------------------------------------------------------------------------

def _header(results: Mapping, description: ModelDescription, directory: str, results_file: str) -> str:
    metadata = _metadata(results)
    preprocessing = description.preprocessing
    skipped = f", {len(metadata['skipped'])} skipped" if metadata.get("skipped") else ""
    rows = [
        ("checkpoint", _text(metadata.get("checkpoint", "unknown"))),
        ("architecture", _text(f"{description.arch} (stride on {description.stride_on}, {description.padding} "
                               f"padding, batch-norm epsilon {description.batch_norm_epsilon:g})")),
        ("classes", f"{description.num_classes}: {_legend(description.names(), description.palette())}"),
        ("preprocessing", _text(f"{preprocessing.channel_order} x {preprocessing.scale:g}, mean "
                                f"{_numbers(preprocessing.mean)}, std {_numbers(preprocessing.std)}; ignore label "
                                f"{description.ignore_label}")),
        ("data list", _text(metadata.get("data_list", "unknown"))),
        ("images", _text(f"{metadata.get('images', 'unknown')} evaluated{skipped}")),
        ("scales", _text(f"{_numbers(metadata.get('scales', [1.0]))} ({metadata.get('fusion', 'max')} fusion)")),
        ("flip", "yes" if metadata.get("flip") else "no"),
        ("CRF", _text(_crf_settings(metadata.get("crf")))),
    ]
    rows += [(key, _text(metadata[key])) for key in ("tiles", "precision", "threshold", "min_confidence")
             if metadata.get(key) is not None]
    rows += [("date", _text(datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"))),
             ("refinenet-tf", _text(__version__))]
    items = "".join(f'<dt>{key}</dt><dd data-key="{key}">{value}</dd>' for key, value in rows)
    link = urllib.request.pathname2url(os.path.relpath(os.path.abspath(results_file), os.path.abspath(directory)))
    return (f'<header id="run"><dl class="run">{items}</dl>'
            f'<p>All numbers: <a id="results-link" href="{_text(link)}">{_text(os.path.basename(results_file))}'
            f"</a></p></header>")


def _scores_section(branches: Mapping[str, Mapping], names: Sequence[str], colours: np.ndarray) -> str:
    plain = branches["plain"]
    crf = branches.get("crf")
    columns = ["plain", "CRF", "change"] if crf is not None else ["%"]
    rows = []
    for label, key in SUMMARY_SCORES:
        if key not in plain:
            continue
        cells = [_value_cell("plain", key, plain[key])]
        if crf is not None:
            cells += [_value_cell("crf", key, crf.get(key)), f'<td class="number">{change(plain[key], crf.get(key))}</td>']
        rows.append(f"<tr><th>{_text(label)}</th>{''.join(cells)}</tr>")
    summary = f"<table><tr><th></th>{''.join(f'<th>{c}</th>' for c in columns)}</tr>{''.join(rows)}</table>"
    kinds = [(key, title) for title, _, key in CLASS_SCORES if key in plain["classes"][0]]
    kinds += [("niou", "nIoU")] if "niou" in plain["classes"][0] else []
    heads = [f"{title} {_BRANCH_TITLES[branch]}" if crf is not None else title
             for branch in branches for _, title in kinds]
    class_rows = []
    for index, name in enumerate(names):
        cells = [_value_cell(branch, f"classes.{index}.{key}", scores["classes"][index].get(key))
                 for branch, scores in branches.items() for key, _ in kinds]
        class_rows.append(f"<tr><th>{_swatch(colours[index])}{_text(name)}</th>{''.join(cells)}</tr>")
    per_class = (f"<table><tr><th>class (%)</th>{''.join(f'<th>{_text(h)}</th>' for h in heads)}</tr>"
                 f"{''.join(class_rows)}</table>")
    return f'<section id="scores"><h2>Scores (%)</h2>{summary}{per_class}</section>'


def _charts_section(directory: str, branches: Mapping[str, Mapping], names: Sequence[str],
                    colours: np.ndarray) -> str:
    bars, heat_maps = [], []
    for branch, scores in branches.items():
        suffix = f" ({_BRANCH_TITLES[branch]})" if len(branches) > 1 else ""
        classes = scores["classes"]
        bars_name, heat_name = f"classes-{branch}.png", f"confusion-{branch}.png"
        plots.class_scores_chart(os.path.join(directory, PICTURES, bars_name), names, colours,
                                 [c["iou"] for c in classes], [c["accuracy"] for c in classes],
                                 f"per-class IoU and accuracy{suffix}")
        plots.confusion_heat_map(os.path.join(directory, PICTURES, heat_name), names,
                                 np.asarray(scores["confusion_matrix"]), f"confusion, rows normalised{suffix}")
        bars.append(_picture(bars_name, f"per-class IoU and accuracy{suffix}"))
        heat_maps.append(_picture(heat_name, f"row-normalised confusion matrix{suffix}"))
    return (f'<section id="classes"><h2>Per class</h2><div class="charts">{"".join(bars)}</div></section>'
            f'<section id="confusion"><h2>Confusion matrix</h2><p>Each ground-truth row is divided by its pixel '
            f'count: a cell is the share of that class\'s pixels predicted as the column\'s class.</p>'
            f'<div class="charts">{"".join(heat_maps)}</div></section>')


def _gallery_section(directory: str, gallery: Gallery, names: Sequence[str], colours: np.ndarray,
                     with_crf: bool) -> str:
    ranked = "the CRF's predictions" if with_crf else "the predictions"
    errors = "".join(f'<span class="entry">{_swatch(colour)}{_text(name)}</span>'
                     for name, colour in ERROR_COLOURS.items())
    parts = [f'<section id="gallery"><h2>Worst and best images</h2><p>Ranked by each image\'s own mean IoU '
             f"(over the classes in its ground truth or prediction), for {ranked}.</p>",
             f'<p class="legend">{_legend(names, colours)}</p><p class="legend">errors: {errors}</p>']
    for kind, images in (("worst", gallery.worst()), ("best", gallery.best())):
        parts.append(f'<h3 id="{kind}">The {len(images)} {kind}</h3>')
        parts += [_gallery_row(directory, kind, rank, item) for rank, item in enumerate(images, start=1)]
    return "".join(parts) + "</section>"


def _gallery_row(directory: str, kind: str, rank: int, item: GalleryImage) -> str:
    height, width = item.image.shape[:2]
    factor = THUMBNAIL_SIDE / max(height, width)
    shown = f'width="{round(width * factor)}" height="{round(height * factor)}"'
    figures = []
    for panel in PANELS:
        name = f"{kind}-{rank:02d}-{panel}.png"
        _save_png(os.path.join(directory, PICTURES, name), getattr(item, panel))
        figures.append(f'<figure><img src="{PICTURES}/{name}" {shown} alt="{_PANEL_TITLES[panel]}">'
                       f"<figcaption>{_PANEL_TITLES[panel]}</figcaption></figure>")
    return (f'<figure class="row {kind}" data-rank="{rank}" data-path="{_text(item.path)}" '
            f'data-mean-iou="{item.mean_iou!r}"><figcaption class="title">{rank}. {_text(_shown(item.path))}: mean IoU '
            f'{percent(item.mean_iou)}%</figcaption><div class="panels">{"".join(figures)}</div></figure>')


# --- pieces ----------------------------------------------------------------------------------------------

def _branches(results: Mapping) -> dict[str, Mapping]:
    """{'plain': scores} or, for a CRF evaluation, {'plain': ..., 'crf': ...}."""
    if "crf" in results and "plain" in results:
        return {"plain": results["plain"], "crf": results["crf"]}
    return {"plain": results}


def _metadata(results: Mapping) -> Mapping:
    return results.get("metadata") or {}


def _written_by_us(path: str) -> bool:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return MARKER in handle.read(4096)
    except OSError:
        return False


def _value_cell(branch: str, key: str, value: float | None) -> str:
    data = "null" if value is None else repr(float(value))
    return f'<td class="number" data-branch="{branch}" data-key="{key}" data-value="{data}">{percent(value)}</td>'


def _crf_settings(crf: Mapping | None) -> str:
    if not crf:
        return "no"
    return "dense CRF: " + ", ".join(f"{key.replace('_', ' ')} {value:g}" for key, value in crf.items())


def _legend(names: Sequence[str], colours: np.ndarray) -> str:
    return "".join(f'<span class="entry">{_swatch(colour)}{_text(name)}</span>'
                   for name, colour in zip(names, colours, strict=True))


def _swatch(colour) -> str:
    red, green, blue = (int(value) for value in colour)
    return f'<span class="swatch" style="background: rgb({red}, {green}, {blue})"></span>'


def _picture(name: str, alt: str) -> str:
    return f'<img src="{PICTURES}/{name}" alt="{_text(alt)}">'


def _shown(path: str) -> str:
    """``path`` relative to the working directory when it lies inside it, as the header's paths are."""
    relative = os.path.relpath(path)
    return path if relative.startswith(os.pardir) else relative


def _numbers(values: Sequence[float]) -> str:
    return ", ".join(f"{float(value):g}" for value in values)


def _text(value: object) -> str:
    return html.escape(str(value))


def _save_png(path: str, picture: np.ndarray) -> None:
    try:
        Image.fromarray(picture).save(path, format="PNG")
    except OSError as error:
        raise ConfigError(f"{path}: cannot write the picture ({error.strerror or error})") from None
