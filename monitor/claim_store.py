"""The claim store: observations diffed against a site's claims, stored as claims and events.

`apply_observations` is where a check's (or a re-extraction's) findings become claim rows and
change events; `reclassify_site` re-reads stored snapshots under new rules.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from claims_db.models import ChangeEvent, Claim, Crawl, Site, Snapshot, utcnow
from monitor.diff import ClaimDiff, match_claims
from monitor.observe import PageObservation, latest_good_snapshots, observe
from monitor.records import ExtractedClaim, unique_claims

# A claim seen on at least this many pages of one crawl is site-wide even outside marked chrome.
SITE_WIDE_MIN_PAGES = 3


def site_wide_identities(
    observations: Sequence[PageObservation], known_site_claims: Iterable[Claim]
) -> set[tuple[str, str]]:
    """(category, key) of claims that belong to the site rather than to one page.

    Chrome (header, footer, sidebar) marks a claim site-wide; so does repetition on many pages.
    A claim already site-wide stays so while it is seen anywhere, so scope does not flap.
    """
    counts: Counter[tuple[str, str]] = Counter()
    chrome: set[tuple[str, str]] = set()
    for obs in observations:
        for claim in unique_claims(obs.claims):
            identity = (claim.category, claim.key)
            counts[identity] += 1
            if claim.chrome:
                chrome.add(identity)
    pages = len(observations)
    repeated = {
        i for i, n in counts.items() if n >= SITE_WIDE_MIN_PAGES or (pages >= 2 and n == pages)
    }
    kept = {(c.category, c.key) for c in known_site_claims if (c.category, c.key) in counts}
    return chrome | repeated | kept


def apply_observations(
    session: Session,
    site: Site,
    observations: Sequence[PageObservation],
    *,
    crawl_id: int | None,
    record_events: bool = True,
    event_type: str | None = None,
) -> list[ChangeEvent]:
    """Diff the observations against the site's active claims and store claims and events.

    `event_type` overrides the event name (``reclassified`` for new rules over old snapshots);
    `record_events=False` (a baseline) updates claims without events.
    """
    now = utcnow()
    active = session.scalars(
        select(Claim).where(Claim.site_id == site.id, Claim.active.is_(True))
    ).all()
    site_claims = [c for c in active if c.scope == "site"]
    wide = site_wide_identities(observations, site_claims)
    _promote_to_site(active, wide)
    site_claims = [c for c in active if c.scope == "site"]
    recorder = _EventRecorder(session, site, crawl_id, now, record_events, event_type)

    site_observed = [
        (obs, c) for obs in observations for c in obs.claims if (c.category, c.key) in wide
    ]
    first_page: dict[tuple[str, str], PageObservation] = {}
    pages_of: dict[tuple[str, str], list[str]] = {}
    for obs, claim in site_observed:
        first_page.setdefault((claim.category, claim.key), obs)
        urls = pages_of.setdefault((claim.category, claim.key), [])
        if obs.page.url not in urls:
            urls.append(obs.page.url)
    site_diff = match_claims(site_claims, [c for _, c in site_observed])
    # A site claim is gone only if a page it stood on was read and lacked it: when all its pages
    # failed this time (a sidebar on some pages only), absence proves nothing.
    read = {obs.page.url for obs in observations}
    site_diff.removed = [c for c in site_diff.removed if read.intersection(c.pages or [c.url])]
    recorder.apply(
        site_diff, lambda c: first_page[(c.category, c.key)], scope="site", pages_of=pages_of
    )

    page_claims: dict[int, list[Claim]] = {}
    for claim in active:
        if claim.scope == "page" and claim.active:
            page_claims.setdefault(claim.page_id, []).append(claim)
    for obs in observations:
        own = [c for c in obs.claims if (c.category, c.key) not in wide]
        diff = match_claims(page_claims.get(obs.page.id, []), own)
        recorder.apply(diff, lambda _c, obs=obs: obs, scope="page")
    session.flush()
    return recorder.events


def _promote_to_site(active: Sequence[Claim], wide: set[tuple[str, str]]) -> None:
    """Page claims that turned out site-wide become the site claim (one keeps its id and history)."""
    site_identities = {(c.category, c.key) for c in active if c.scope == "site"}
    for claim in active:
        identity = (claim.category, claim.key)
        if claim.scope != "page" or identity not in wide:
            continue
        if identity in site_identities:
            claim.active = False  # merged into the existing site claim, silently
        else:
            claim.scope, claim.page_id = "site", None
            claim.pages = [claim.url]
            site_identities.add(identity)


class _EventRecorder:
    """Writes claim rows and change events for one diff application."""

    def __init__(
        self,
        session: Session,
        site: Site,
        crawl_id: int | None,
        now: datetime,
        record_events: bool,
        event_type: str | None,
    ) -> None:
        self.session, self.site, self.crawl_id, self.now = session, site, crawl_id, now
        self.record_events, self.event_type = record_events, event_type
        self.events: list[ChangeEvent] = []

    def apply(self, diff: ClaimDiff, where, *, scope: str, pages_of=None) -> None:
        """Store one ClaimDiff; `where(claim)` gives the PageObservation a claim was seen on."""
        for known, seen in diff.unchanged:
            self._refresh(known, seen, where(seen), pages_of)
        for known, seen in diff.changed:
            old_text = known.text
            self._refresh(known, seen, where(seen), pages_of)
            self._event("changed", known, where(seen).snapshot, old_text=old_text)
        for seen in diff.new:
            obs = where(seen)
            claim = self._create(seen, obs, scope, pages_of)
            self._event("new", claim, obs.snapshot)
        for known in diff.removed:
            known.active, known.removed_at = False, self.now
            self._event("removed", known, None)

    def _refresh(self, claim: Claim, seen: ExtractedClaim, obs: PageObservation, pages_of) -> None:
        _copy_extracted(claim, seen)
        claim.last_seen_at, claim.last_snapshot_id = self.now, obs.snapshot.id
        if pages_of is not None:
            claim.pages = pages_of.get((seen.category, seen.key), claim.pages)

    def _create(self, seen: ExtractedClaim, obs: PageObservation, scope: str, pages_of) -> Claim:
        claim = self.session.scalar(
            select(Claim).where(
                Claim.site_id == self.site.id,
                Claim.scope == scope,
                Claim.page_id.is_(None) if scope == "site" else Claim.page_id == obs.page.id,
                Claim.category == seen.category,
                Claim.key == seen.key,
                Claim.active.is_(False),
            )
        )
        if claim is None:  # a claim that comes back keeps its id and history
            claim = Claim(
                site_id=self.site.id,
                page_id=None if scope == "site" else obs.page.id,
                scope=scope,
                url=obs.page.url,
                first_seen_at=self.now,
                first_snapshot_id=obs.snapshot.id,
            )
            self.session.add(claim)
        claim.active, claim.removed_at = True, None
        self._refresh(claim, seen, obs, pages_of)
        self.session.flush()
        return claim

    def _event(self, event: str, claim: Claim, snapshot: Snapshot | None, old_text=None) -> None:
        if not self.record_events:
            return
        detail = None
        if self.event_type:
            detail, event = {"kind": event, "rules_version": claim.rules_version}, self.event_type
        row = ChangeEvent(
            site_id=self.site.id,
            crawl_id=self.crawl_id,
            claim_id=claim.id,
            snapshot_id=snapshot.id if snapshot else None,
            event=event,
            category=claim.category,
            url=claim.url,
            text=claim.text,
            old_text=old_text,
            detail=detail,
            detected_at=self.now,
        )
        self.session.add(row)
        self.session.flush()
        self.events.append(row)


def _copy_extracted(claim: Claim, seen: ExtractedClaim) -> None:
    claim.category, claim.key, claim.text, claim.lang = (
        seen.category,
        seen.key,
        seen.text,
        seen.lang,
    )
    claim.trigger, claim.trigger_start, claim.trigger_end = (
        seen.trigger,
        seen.trigger_start,
        seen.trigger_end,
    )
    claim.rule_id, claim.rules_version = seen.rule_id, seen.rules_version
    claim.hedged, claim.confidence = seen.hedged, seen.confidence
    claim.conditions = list(seen.conditions)
    claim.attributes = {
        **seen.attributes,
        "interventions": list(seen.interventions),
        "figures": list(seen.figures),
    }
    claim.location = seen.location


def reclassify_site(
    session: Session,
    site: Site,
    extractor,
    *,
    exclude_crawl: int | None = None,
    lang_hint: str | None = None,
    force: bool = False,
) -> list[ChangeEvent]:
    """Re-apply the current rules to the site's stored snapshots; differences are `reclassified`.

    Does nothing when every active claim already carries the current rules version (unless
    `force`), so an ordinary check pays nothing for it.
    """
    stale = session.scalar(
        select(func.count(Claim.id)).where(
            Claim.site_id == site.id,
            Claim.active.is_(True),
            Claim.rules_version != extractor.version,
        )
    )
    last_rules = session.scalar(
        select(Crawl.rules_version)
        .where(Crawl.site_id == site.id, Crawl.status == "done")
        .order_by(Crawl.id.desc())
        .limit(1)
    )
    if not force and not stale and last_rules in (None, extractor.version):
        return []
    snapshots = latest_good_snapshots(session, site, exclude_crawl)
    observations = observe(session, extractor, snapshots, lang_hint or site.lang)
    if not observations:
        return []
    return apply_observations(session, site, observations, crawl_id=None, event_type="reclassified")
