"""The HTML pages: sites list, site, claim, review queue, and the review form's target."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import RedirectResponse
from sqlalchemy.orm import Session
from starlette.responses import Response

from claims_db.models import User
from monitor.web import queries
from monitor.web.deps import check_csrf, get_db, require
from monitor.web.routes.login import safe_next
from monitor.web.textview import (
    context_around,
    decode_body,
    highlight,
    safe_http_url,
    visible_text,
    word_diff,
)

router = APIRouter(include_in_schema=False)
QUEUE_PAGE_SIZE = 50


def render(request: Request, name: str, user: User, **context: Any) -> Response:
    """A template with the signed-in user and the page-building helpers."""
    context.update(user=user, highlight=highlight, safe_http_url=safe_http_url)
    return request.app.state.templates.TemplateResponse(request, name, context)


def _filters(country: str, category: str, condition: str, q: str) -> queries.ClaimFilters:
    return queries.ClaimFilters(
        country=country.strip() or None,
        category=category.strip() or None,
        condition=condition.strip() or None,
        q=q.strip() or None,
    )


@router.get("/")
def home(user: User = Depends(require("viewer"))) -> Response:
    """The sites list is the start page."""
    return RedirectResponse("/sites", status_code=303)


@router.get("/sites")
def sites(
    request: Request,
    country: str = "",
    category: str = "",
    condition: str = "",
    q: str = "",
    sort: str = "name",
    order: str = "asc",
    user: User = Depends(require("viewer")),
    db: Session = Depends(get_db),
) -> Response:
    """Every watched site with its last check, claims per category and unreviewed changes."""
    filters = _filters(country, category, condition, q)
    rows = queries.site_summaries(db, filters, sort, descending=order == "desc")
    query = {"country": country, "category": category, "condition": condition, "q": q}
    return render(
        request,
        "sites.html",
        user,
        title="Sites",
        rows=rows,
        filters=query,
        sort=sort,
        order=order,
        sorts=queries.SITE_SORTS,
        countries=queries.countries(db),
        base_query=urlencode({k: v for k, v in query.items() if v}),
    )


@router.get("/sites/{site_id}")
def site_page(
    request: Request,
    site_id: int,
    category: str = "",
    removed: bool = False,
    user: User = Depends(require("viewer")),
    db: Session = Depends(get_db),
) -> Response:
    """One site: claims grouped by page, and its timeline of checks and change events."""
    detail = queries.site_detail(db, site_id, category=category or None, include_removed=removed)
    if detail is None:
        raise HTTPException(404, f"no site with id {site_id}")
    claim_ids = [c.id for group in detail.claims_by_page.values() for c in group]
    return render(
        request,
        "site.html",
        user,
        title=detail.site.name,
        detail=detail,
        category=category,
        removed=removed,
        decisions=queries.latest_decisions(db, claim_ids),
    )


def archived_context(db: Session, detail: queries.ClaimDetail) -> list[Any] | None:
    """The claim's sentence in the archived page's visible text, or None if unavailable."""
    if detail.snapshot is None:
        return None
    stored = queries.archived_body(db, detail.snapshot)
    if stored is None:
        return None
    text = visible_text(decode_body(*stored))
    return context_around(text, detail.claim.text)


@router.get("/claims/{claim_id}")
def claim_page(
    request: Request,
    claim_id: int,
    user: User = Depends(require("viewer")),
    db: Session = Depends(get_db),
) -> Response:
    """One claim: history with word diffs, archived context, reviews and the review form."""
    detail = queries.claim_detail(db, claim_id)
    if detail is None:
        raise HTTPException(404, f"no claim with id {claim_id}")
    diffs = {
        e.id: word_diff(e.old_text, e.text)
        for e in detail.events
        if e.event == "changed" and e.old_text is not None
    }
    pending = queries.oldest_unreviewed_event(db, claim_id)
    return render(
        request,
        "claim.html",
        user,
        title=f"Claim {claim_id}",
        detail=detail,
        claim=detail.claim,
        diffs=diffs,
        context=archived_context(db, detail),
        pending_event=pending,
        decisions=queries.DECISIONS,
    )


@router.get("/queue")
def queue(
    request: Request,
    category: str = "",
    country: str = "",
    site: int | None = None,
    page: int = 1,
    user: User = Depends(require("viewer")),
    db: Session = Depends(get_db),
) -> Response:
    """Unreviewed new and changed claims, oldest first."""
    page = max(page, 1)
    filters = queries.ClaimFilters(country=country or None, category=category or None, site_id=site)
    events, total = queries.review_queue(
        db, filters, limit=QUEUE_PAGE_SIZE, offset=(page - 1) * QUEUE_PAGE_SIZE
    )
    diffs = {e.id: word_diff(e.old_text, e.text) for e in events if e.old_text is not None}
    chosen = {"category": category, "country": country, "site": site}
    filter_query = urlencode({k: v for k, v in chosen.items() if v})
    return render(
        request,
        "queue.html",
        user,
        title="Review queue",
        events=events,
        total=total,
        page=page,
        pages=max(1, -(-total // QUEUE_PAGE_SIZE)),
        diffs=diffs,
        category=category,
        country=country,
        site=site,
        filter_query=filter_query,
        return_to=f"/queue?page={page}" + (f"&{filter_query}" if filter_query else ""),
        countries=queries.countries(db),
        decisions=queries.DECISIONS,
    )


@router.post("/claims/{claim_id}/reviews", dependencies=[Depends(check_csrf)])
def review_claim(
    request: Request,
    claim_id: int,
    decision: str = Form(...),
    note: str = Form(""),
    event_id: int | None = Form(None),
    next: str = Form(""),
    user: User = Depends(require("reviewer")),
    db: Session = Depends(get_db),
) -> Response:
    """Record a reviewer's decision, then go back where the form was."""
    try:
        queries.record_review(
            db, claim_id=claim_id, user=user, decision=decision, note=note, event_id=event_id
        )
    except queries.ReviewError as exc:
        raise HTTPException(400, str(exc)) from None
    return RedirectResponse(safe_next(next or f"/claims/{claim_id}"), status_code=303)
