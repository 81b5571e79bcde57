"""The one Jinja environment and the one PDF renderer of the approval documents.

Every template (report, Annex IV HTML and Markdown) is rendered with ``StrictUndefined``: a key the
template names but the context lacks is an error, never an empty cell a reviewer mistakes for
"nothing to report". PDFs come from WeasyPrint with a fetcher that allows ``data:`` URIs only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any


def jinja_env(*, html: bool = True, filters: Mapping[str, Callable[..., Any]] | None = None) -> Any:
    """The templates in ``tunegate/templates``; HTML-escaped unless ``html=False`` (Markdown)."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("tunegate", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]) if html else False,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(filters or {})
    return env


def render_pdf(html: str) -> bytes:
    """WeasyPrint PDF of the same HTML; the fetcher allows ``data:`` URIs only (no network, no files)."""
    from weasyprint import HTML
    from weasyprint.urls import URLFetcher

    fetcher = URLFetcher(allowed_protocols=["data"], fail_on_errors=True)
    return bytes(HTML(string=html, url_fetcher=fetcher).write_pdf())
