"""The JSON API under /api/: sites, claims, changes, reviews, exports and the OpenAPI description.

It uses the same session cookie as the pages; POST requests also need the ``X-CSRF-Token`` header
(the token is in ``GET /api/me``). Unauthenticated requests get 401, the wrong role 403.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from sqlalchemy.orm import Session

from claims_db.models import User
from monitor.web import queries
from monitor.web.deps import check_csrf, get_db, require, session_data
from monitor.web.schemas import (
    ChangeOut,
    ChangesOut,
    ClaimDetailOut,
    ClaimOut,
    ClaimsOut,
    MeOut,
    ReviewIn,
    ReviewOut,
    ReviewsOut,
    SiteOut,
    SitesOut,
)
from monitor.web.security import csrf_token

router = APIRouter(prefix="/api", tags=["api"])
MAX_LIMIT = 1000
EXPORT_MEDIA_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "jsonl": "application/x-ndjson",
    "parquet": "application/vnd.apache.parquet",
}


def _next_after(items: list[Any], limit: int) -> int | None:
    return items[-1].id if len(items) == limit else None


@router.get("/openapi.json", include_in_schema=False)
def openapi(request: Request, user: User = Depends(require("viewer"))) -> JSONResponse:
    """The OpenAPI description of this API."""
    return JSONResponse(request.app.openapi())


@router.get("/me", response_model=MeOut)
def me(request: Request, user: User = Depends(require("viewer"))) -> MeOut:
    """Who is signed in, and the CSRF token for POST requests."""
    return MeOut(name=user.name, role=user.role, csrf_token=csrf_token(session_data(request)))


@router.get("/sites", response_model=SitesOut)
def sites(
    country: str | None = None,
    category: str | None = None,
    condition: str | None = None,
    q: str | None = Query(None, description="text search in the claims' sentences"),
    user: User = Depends(require("viewer")),
    db: Session = Depends(get_db),
) -> SitesOut:
    """Sites with last check, active claims per category and unreviewed changes."""
    filters = queries.ClaimFilters(country=country, category=category, condition=condition, q=q)
    rows = queries.site_summaries(db, filters)
    return SitesOut(items=[SiteOut.from_summary(r) for r in rows])


@router.get("/claims", response_model=ClaimsOut)
def claims(
    site_id: int | None = None,
    country: str | None = None,
    category: str | None = None,
    condition: str | None = None,
    q: str | None = None,
    active: bool | None = True,
    after_id: int | None = None,
    limit: int = Query(100, ge=1, le=MAX_LIMIT),
    user: User = Depends(require("viewer")),
    db: Session = Depends(get_db),
) -> ClaimsOut:
    """Claims by id (active ones unless `active` says otherwise), filtered."""
    filters = queries.ClaimFilters(country, category, condition, q, site_id)
    items = queries.list_claims(db, filters, active=active, after_id=after_id, limit=limit)
    return ClaimsOut(items=[ClaimOut.of(c) for c in items], next_after_id=_next_after(items, limit))


@router.get("/claims/{claim_id}", response_model=ClaimDetailOut)
def claim(
    claim_id: int, user: User = Depends(require("viewer")), db: Session = Depends(get_db)
) -> ClaimDetailOut:
    """One claim with its change events and reviews."""
    detail = queries.claim_detail(db, claim_id)
    if detail is None:
        raise HTTPException(404, f"no claim with id {claim_id}")
    site_name = detail.claim.site.name
    return ClaimDetailOut(
        **ClaimOut.of(detail.claim).model_dump(),
        events=[ChangeOut.of(e, site_name) for e in detail.events],
        reviews=[ReviewOut.of(r) for r in detail.reviews],
    )


@router.get("/changes", response_model=ChangesOut)
def changes(
    site_id: int | None = None,
    country: str | None = None,
    category: str | None = None,
    event: Literal["new", "changed", "removed", "reclassified"] | None = None,
    unreviewed: bool = False,
    since: datetime | None = None,
    after_id: int | None = None,
    limit: int = Query(100, ge=1, le=MAX_LIMIT),
    user: User = Depends(require("viewer")),
    db: Session = Depends(get_db),
) -> ChangesOut:
    """Change events by id, filtered; `unreviewed=true` gives the review queue's content."""
    filters = queries.ClaimFilters(country=country, category=category, site_id=site_id)
    items = queries.list_changes(
        db,
        filters,
        event=event,
        unreviewed=unreviewed,
        since=since,
        after_id=after_id,
        limit=limit,
    )
    return ChangesOut(
        items=[ChangeOut.of(e) for e in items], next_after_id=_next_after(items, limit)
    )


@router.get("/reviews", response_model=ReviewsOut)
def reviews(
    claim_id: int | None = None,
    decision: Literal["confirmed", "dismissed", "escalated"] | None = None,
    after_id: int | None = None,
    limit: int = Query(100, ge=1, le=MAX_LIMIT),
    user: User = Depends(require("viewer")),
    db: Session = Depends(get_db),
) -> ReviewsOut:
    """Review decisions by id, with reviewer and time."""
    items = queries.list_reviews(
        db, claim_id=claim_id, decision=decision, after_id=after_id, limit=limit
    )
    return ReviewsOut(
        items=[ReviewOut.of(r) for r in items], next_after_id=_next_after(items, limit)
    )


@router.post(
    "/reviews", response_model=ReviewOut, status_code=201, dependencies=[Depends(check_csrf)]
)
def create_review(
    body: ReviewIn, user: User = Depends(require("reviewer")), db: Session = Depends(get_db)
) -> ReviewOut:
    """Record a decision (reviewers and admins; needs the ``X-CSRF-Token`` header)."""
    try:
        review = queries.record_review(
            db,
            claim_id=body.claim_id,
            user=user,
            decision=body.decision,
            note=body.note,
            event_id=body.event_id,
        )
    except queries.ReviewError as exc:
        raise HTTPException(400, str(exc)) from None
    review.user = user
    return ReviewOut.of(review)


@router.get("/export/{kind}")
def export(
    request: Request,
    kind: Literal["claims", "changes", "sites"],
    format: Literal["csv", "jsonl", "parquet"] = "csv",
    since: datetime | None = None,
    until: datetime | None = None,
    site: str | None = None,
    country: str | None = None,
    category: str | None = None,
    condition: str | None = None,
    lang: str | None = None,
    user: User = Depends(require("viewer")),
) -> StreamingResponse:
    """The dataset export (as `clinicwatch export`) streamed as a file download."""
    from claims_db.export import ExportError, ExportFilters, check_request, export_stream

    filters = ExportFilters(
        since=since,
        until=until,
        site=site,
        country=country,
        category=category,
        condition=condition,
        lang=lang,
    )
    sessions = request.app.state.sessions
    with sessions() as session:
        try:  # refuse bad filters with a clear 400 before any byte is streamed
            check_request(session, kind, filters, format)
        except ExportError as exc:
            raise HTTPException(400, str(exc)) from None

    def stream() -> Iterator[bytes]:
        # Its own session: the response is streamed after this function has returned.
        with sessions() as session:
            yield from export_stream(session, kind, format, filters)

    filename = f"clinicwatch-{kind}.{format}"
    return StreamingResponse(
        stream(),
        media_type=EXPORT_MEDIA_TYPES[format],
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
