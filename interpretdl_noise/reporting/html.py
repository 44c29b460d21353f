"""The self-contained HTML report: :func:`report` builds a :class:`Report` (``save``, ``_repr_html_``).

The page is one file: styles and the script are inline (``static/report.css``, ``static/report.js``),
thumbnails are PNG data URIs and charts are inline SVG, so it opens from disk, in a notebook or as an
e-mail attachment and makes no request to any network address. Cards are rendered here, in Python,
so they show even where scripts do not run; the script only sorts, filters, searches and records the
review (keep / drop / relabel), kept in the browser's localStorage and exported as a decisions CSV
(``sample_id,action,new_label``) that ``interpretdl-noise clean --decisions`` applies.

Stable hooks for tests and users' scripts: each card is ``.card`` with ``data-sample-id``,
``data-given``, ``data-suggested``, ``data-flagged``, ``data-rank`` and one ``data-score-<detector>``
per detector; controls ``#sort-by`` (values = detector names), ``#filter-given``,
``#filter-suggested``, ``#filter-flag``, ``#search``; review buttons ``[data-action=keep|drop|relabel]``
with the label picker ``select.relabel-to``; ``#export-decisions``; ``#visible-count``.
"""
from __future__ import annotations

import hashlib
import json
from html import escape
from importlib import resources
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from ..common.atomic import PathLike, atomic_path
from .content import ReportContent, build_content
from .images import as_image_source, encode_png
from .svg import PALETTE, bars_svg, curve_svg, heatmap_svg, line_chart_svg, sparkline_svg

__all__ = ["Report", "report"]

THUMB_PX = 72  # displayed thumbnail size (CSS px); PNGs are stored at most this large


def _static(name: str) -> str:
    return resources.files("interpretdl_noise.reporting").joinpath("static", name).read_text(encoding="utf-8")


class Report:
    """A rendered report. ``html`` is the page; ``save(path)`` writes it; notebooks call ``_repr_html_``.

    Attributes
    ----------
    content : ReportContent
        The numbers behind the page (scores, ranks, suggestions, noise estimate, card rows).
    """

    def __init__(self, html: str, content: ReportContent):
        self._html = html
        self.content = content

    @property
    def html(self) -> str:
        """The whole page, one self-contained HTML document."""
        return self._html

    @property
    def n_cards(self) -> int:
        return int(self.content.rows.shape[0])

    def save(self, path: PathLike) -> Path:
        """Write the page to ``path`` (UTF-8, atomically); return the path."""
        path = Path(path)
        if path.suffix.lower() not in (".html", ".htm"):
            raise ValueError(f"the report is an HTML page; give a path ending in .html, got {str(path)!r}")
        with atomic_path(path) as tmp:
            tmp.write_text(self._html, encoding="utf-8")
        return path

    def _repr_html_(self) -> str:
        # An iframe keeps the page's ids, styles and script apart from the notebook's own.
        return (f'<iframe srcdoc="{escape(self._html, quote=True)}" title="interpretdl-noise report" '
                'style="width:100%;height:860px;border:1px solid #ccc;border-radius:4px"></iframe>')

    def __repr__(self) -> str:
        rec = self.content.recording
        return (f"Report(N={rec.n_samples}, cards={self.n_cards}, method={self.content.method!r}, "
                f"detectors={list(self.content.scores)}, {len(self._html) / 1e6:.2f} MB)")


def report(recording: Any, images: Any = None, class_names: Optional[Sequence[str]] = None, top: int = 100,
           method: str = "bhdf", *, scores: Any = None, methods: Optional[Sequence[str]] = None,
           cutoff: Any = "auto", noise_method: str = "auto", title: Optional[str] = None) -> Report:
    """Build the HTML report of a recording: summary, and a reviewable gallery of the top-K suspects.

    Parameters
    ----------
    recording : path, mapping, DynamicsRecorder or Recording
        Anything :meth:`Recording.coerce` accepts; it needs ``labels``.
    images : array or dataset, optional
        The training samples in dataset order (row ``i`` of the recording shows ``images[sample_ids[i]]``):
        (N, H, W), (N, H, W, 1|3) or (N, 1|3, H, W), uint8 or float in [0, 1]; (N, D) feature vectors
        (drawn as a line); or an indexable dataset whose items are, or start with, such an image.
        Without images a card shows the sample's last-epoch class probabilities as bars.
    class_names : sequence of C str, optional
        Display names of the classes (default ``'0'..'C-1'``).
    top : int, default=100
        K, the number of cards: the K most suspicious samples by ``method`` (all N when K > N).
    method : str, default='bhdf'
        The detector that picks and first orders the cards and flags issues.
    scores : mapping of name -> (N,) array, or ComparisonResult, optional
        Precomputed detector scores (higher = more likely mislabeled). Default: every detector that
        runs on the recording alone (``compare_detectors(recording, methods)``).
    methods : sequence of str, optional
        Detectors to run when ``scores`` is not given (default all).
    cutoff : 'auto', float or int, default='auto'
        Passed to :func:`~interpretdl_noise.find_label_issues` for the ``flagged`` state.
    noise_method : str, default='auto'
        Passed to :func:`~interpretdl_noise.estimate_noise`.
    title : str, optional
        Page title (default: the recording's source).

    Returns
    -------
    Report
        ``.save(path)``, ``.html``, ``._repr_html_()``, ``.content``.

    Raises
    ------
    ValueError
        Images whose count differs from N or with an unsupported shape / dtype, class names whose count
        differs from C, ``top`` < 1, or a ranking ``method`` without scores.
    """
    from ..recording import Recording

    rec = Recording.coerce(recording)
    source = as_image_source(images, rec.n_samples)  # checked before the (slower) detectors run
    if source is not None and rec.n_samples:
        ids = rec.sample_ids
        if ids.min() < 0 or ids.max() >= source.n:
            raise ValueError(f"the recording's sample_ids range over [{ids.min()}, {ids.max()}] but images has "
                             f"{source.n} items; images must be in dataset order, indexed by sample id")
    content = build_content(rec, top=top, method=method, class_names=class_names, scores=scores, methods=methods,
                            cutoff=cutoff, noise_method=noise_method)
    return Report(render(content, source, title=title), content)


# ---------------------------------------------------------------------------------------------- rendering
def _pct(v: float) -> str:
    return f"{100 * v:.1f} %"


def _label_html(names: Sequence[str], c: int) -> str:
    return f'<span title="class {c}">{escape(names[c])}</span>'


def _num(v: float) -> str:
    """A score for the card: 3 significant digits, whole numbers as they are (e.g. a count of 1000)."""
    return f"{v:.0f}" if abs(v) >= 1000 or (v == int(v) and abs(v) >= 10) else f"{v:.3g}"


def _thumb(content: ReportContent, source, row: int) -> str:
    rec = content.recording
    if source is None:
        probs = np.zeros(rec.n_classes)
        probs[rec.labels[row].astype(np.int64)] = np.asarray(rec.td[row, -1], dtype=np.float64)
        return bars_svg(probs, content.class_names, width=THUMB_PX, height=THUMB_PX, ymax=1.0,
                        highlight=[int(content.given[row])],
                        title="last-epoch class probabilities (given label highlighted)")
    index = _image_index(rec, row, source.n)
    item = source.item(index)
    if source.kind == "features":
        return sparkline_svg(item, width=THUMB_PX, height=THUMB_PX)
    pixelated = " px" if max(item.shape[:2]) < THUMB_PX else ""
    return (f'<img class="thumb-img{pixelated}" src="{encode_png(item, max_side=THUMB_PX)}" '
            f'width="{THUMB_PX}" height="{THUMB_PX}" alt="sample {int(rec.sample_ids[row])}">')


def _image_index(rec, row: int, n_images: int) -> int:
    sid = int(rec.sample_ids[row])
    if not 0 <= sid < n_images:
        raise ValueError(f"sample id {sid} of row {row} is not a position in images (N={n_images}); images must be "
                         "in dataset order, indexed by the recording's sample_ids")
    return sid


def _card(content: ReportContent, source, row: int, position: int) -> str:
    rec = content.recording
    names = content.class_names
    sid = int(rec.sample_ids[row])
    given, suggested = int(content.given[row]), int(content.suggested[row])
    flips = content.known_flips
    flagged = bool(content.flagged[row])
    known = bool(flips[row]) if flips is not None else False
    attrs = [f'data-sample-id="{sid}"', f'data-given="{given}"', f'data-suggested="{suggested}"',
             f'data-flagged="{int(flagged)}"', f'data-rank="{position}"']
    if flips is not None:
        attrs.append(f'data-known-flip="{int(known)}"')
    attrs += [f'data-score-{name}="{s[row]:.9g}"' for name, s in content.scores.items()]
    flags = []
    if flagged:
        flags.append(f'<span class="flag flagged" title="find_label_issues(method={escape(content.method)})">'
                     "flagged</span>")
    if suggested != given:
        flags.append('<span class="flag changed">label differs</span>')
    if known:
        flags.append('<span class="flag known" title="label_flip in the recording">known mislabeled</span>')
    score_rows = "".join(
        f'<tr{" class=lead" if name == content.method else ""}><th>{escape(name)}</th>'
        f'<td>{_num(content.scores[name][row])}</td><td>#{int(content.ranks[name][row])}</td></tr>'
        for name in content.scores)
    curve = curve_svg(rec.td[row, :, 0], content.median_curve, title=(
        f"probability of the given label per epoch ({rec.n_epochs} epochs); grey: the run's median"))
    return (f'<article class="card" {" ".join(attrs)}>'
            f'<div class="head"><div class="thumb">{_thumb(content, source, row)}</div><div class="meta">'
            f'<div class="title"><span class="pos">#{position}</span> sample <b>{sid}</b></div>'
            f'<div class="lab">given <b>{_label_html(names, given)}</b></div>'
            f'<div class="lab">suggested <b>{_label_html(names, suggested)}</b> '
            f'<span class="conf" title="confidence of the suggestion">{content.confidence[row]:.2f}</span></div>'
            f'<div class="flags">{"".join(flags)}</div></div></div>'
            f'{curve}<table class="scores">{score_rows}</table>'
            '<div class="review"><button type="button" data-action="keep">keep</button>'
            '<button type="button" data-action="drop">drop</button>'
            '<button type="button" data-action="relabel">relabel</button>'
            '<select class="relabel-to" hidden aria-label="new label"></select></div></article>')


def _summary(content: ReportContent) -> str:
    rec = content.recording
    est = content.estimate
    names = content.class_names
    lo, hi = est.interval
    stats = [("samples (N)", f"{rec.n_samples:,}"), ("epochs (E)", str(rec.n_epochs)),
             ("classes (C)", str(rec.n_classes)),
             ("estimated noise", f"{_pct(est.rate)} <small>(95 % interval {_pct(lo)} – {_pct(hi)}; "
                                 f"≈ {int(est.n_issues):,} samples; {escape(str(est.method))})</small>"),
             (f"flagged by {escape(content.method)}", f"{int(content.flagged.sum()):,}"),
             ("label differs from suggestion", f"{int((content.given != content.suggested).sum()):,}")]
    if content.known_flips is not None:
        stats.append(("known mislabeled (label_flip)", f"{int(content.known_flips.sum()):,}"))
    stat_html = "".join(f'<div class="stat"><span>{k}</span><b>{v}</b></div>' for k, v in stats)
    per_class = bars_svg(est.per_class, names, width=max(240, min(900, 22 * rec.n_classes + 50)), height=180,
                         ymax=None, axis=True, value_format="{:.1%}",
                         title="estimated share of wrong labels among samples given each class")
    heat = heatmap_svg(content.given_vs_suggested(), names, size=230)
    panels = [f'<figure><figcaption>Estimated noise per given class</figcaption>{per_class}</figure>',
              f'<figure><figcaption title="counts over all {rec.n_samples:,} samples">Given vs suggested label'
              '</figcaption>'
              f'{heat}</figure>']
    if content.metrics:
        roc = {n: m["roc"] for n, m in content.metrics.items()}
        pr = {n: m["pr"] for n, m in content.metrics.items()}
        rows = "".join(f'<tr><td><i style="background:{PALETTE[k % len(PALETTE)]}"></i>{escape(n)}</td>'
                       f'<td>{m["auroc"]:.3f}</td><td>{m["ap"]:.3f}</td></tr>'
                       for k, (n, m) in enumerate(content.metrics.items()))
        roc_svg = line_chart_svg(roc, xlabel="false positive rate", ylabel="true positive rate", diagonal=True,
                                 width=230, height=190)
        panels.append(f'<figure><figcaption>ROC against label_flip</figcaption>{roc_svg}</figure>')
        panels.append(f'<figure><figcaption>Precision–recall against label_flip</figcaption>'
                      f'{line_chart_svg(pr, xlabel="recall", ylabel="precision", width=230, height=190)}</figure>')
        panels.append('<figure><figcaption>Detectors against label_flip</figcaption><table class="metrics">'
                      f'<tr><th>detector</th><th>AUROC</th><th>AP</th></tr>{rows}</table></figure>')
    notes = [f"{escape(n)}: not run ({escape(r)})" for n, r in content.not_run.items()]
    notes += [escape(n) for n in content.notes]
    note_html = f'<ul class="notes">{"".join(f"<li>{n}</li>" for n in notes)}</ul>' if notes else ""
    return (f'<details id="summary" open><summary>Summary</summary><div class="stats">{stat_html}</div>'
            f'<div class="panels">{"".join(panels)}</div>{note_html}</details>')


def _options(names: Sequence[str], present: Sequence[int]) -> str:
    return "".join(f'<option value="{c}">{escape(names[c]) if names[c] == str(c) else escape(f"{names[c]} ({c})")}'
                   "</option>" for c in present)


def _toolbar(content: ReportContent) -> str:
    detectors = "".join(f'<option value="{escape(n)}"{" selected" if n == content.method else ""}>{escape(n)}</option>'
                        for n in content.scores)
    rows = content.rows
    givens = sorted(set(int(c) for c in content.given[rows]))
    suggested = sorted(set(int(c) for c in content.suggested[rows]))
    flag_opts = [("", "all cards"), ("flagged", "flagged"), ("unflagged", "not flagged"),
                 ("changed", "label differs"), ("reviewed", "reviewed"), ("unreviewed", "not reviewed")]
    if content.known_flips is not None:
        flag_opts.insert(3, ("known", "known mislabeled"))
    flags = "".join(f'<option value="{v}">{t}</option>' for v, t in flag_opts)
    return ('<div id="toolbar">'
            f'<label>sort by <select id="sort-by">{detectors}</select></label>'
            f'<label>given <select id="filter-given"><option value="">any</option>'
            f'{_options(content.class_names, givens)}</select></label>'
            f'<label>suggested <select id="filter-suggested"><option value="">any</option>'
            f'{_options(content.class_names, suggested)}</select></label>'
            f'<label>show <select id="filter-flag">{flags}</select></label>'
            '<label>sample id <input id="search" type="search" placeholder="e.g. 17, 230" autocomplete="off">'
            '</label><span id="visible-count" aria-live="polite"></span><span class="spacer"></span>'
            '<span id="decision-count"></span>'
            '<button type="button" id="export-decisions" title="download decisions.csv '
            '(sample_id,action,new_label) for interpretdl-noise clean --decisions">export decisions</button>'
            '<button type="button" id="clear-decisions">clear</button></div>')


def _report_id(content: ReportContent) -> str:
    h = hashlib.sha256()
    h.update(np.asarray(content.sample_ids[content.rows], dtype=np.int64).tobytes())
    h.update(np.asarray(content.given, dtype=np.int64).tobytes())
    h.update(content.method.encode())
    return h.hexdigest()[:16]


def render(content: ReportContent, source=None, *, title: Optional[str] = None) -> str:
    """The page for ``content``; ``source`` is an :class:`~interpretdl_noise.reporting.images.ImageSource` or None."""
    rec = content.recording
    title = title or f"interpretdl-noise report: {Path(str(rec.source)).name}"
    cards = "".join(_card(content, source, int(row), pos) for pos, row in enumerate(content.rows, start=1))
    config = {"id": _report_id(content), "classNames": content.class_names, "method": content.method,
              "detectors": list(content.scores), "total": int(content.rows.shape[0])}
    config_json = json.dumps(config).replace("</", "<\\/")
    ranked = (f"The {content.rows.shape[0]:,} most suspicious of {rec.n_samples:,} samples by "
              f"<b>{escape(content.method)}</b> (higher score = more likely mislabeled). Blue: the probability "
              "of the given label per epoch; grey: the run's median.")
    return ("<!DOCTYPE html>\n"
            '<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            '<link rel="icon" href="data:,">'  # no favicon request
            f"<title>{escape(title)}</title><style>{_static('report.css')}</style></head><body>"
            f'<header><h1>{escape(title)}</h1></header>{_summary(content)}{_toolbar(content)}'
            f'<p class="lead-text">{ranked}</p>'
            '<noscript><p class="lead-text">Sorting, filtering and the review need JavaScript.</p></noscript>'
            f'<main id="cards">{cards}</main><p id="empty" hidden>No card matches the filters.</p>'
            f'<script type="application/json" id="report-config">{config_json}</script>'
            f"<script>{_static('report.js')}</script></body></html>\n")
