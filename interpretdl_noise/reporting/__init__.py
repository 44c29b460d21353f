"""A self-contained HTML report of a recording: summary, suspects gallery and in-browser review.

:func:`report` returns a :class:`Report` with ``save(path)`` and ``_repr_html_()`` (it renders inline in
Jupyter); ``interpretdl-noise report RECORDING.npz --out report.html`` is the command-line form.
"""
from .content import ReportContent
from .html import Report, report

__all__ = ["Report", "ReportContent", "report"]
