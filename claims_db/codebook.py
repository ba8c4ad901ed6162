"""The claim categories: ids (part of the interface) and one-line definitions for exports."""

CATEGORY_DEFINITIONS: dict[str, str] = {
    "efficacy_promise": "Says or implies the treatment works, cures, repairs or improves; success rates.",
    "registry_endorsement": (
        "A registration, notification, approval, licence, certificate, committee review or trial "
        "registration offered as a mark of legitimacy."
    ),
    "safety_claim": "No or few side effects; safe because autologous; no rejection.",
    "anti_aging": "Rejuvenation, longevity or prevention framing.",
    "testimonial": "A patient's story or quote offered as evidence.",
    "price": "The price of a treatment.",
    "scientific_authority": (
        "Borrowed prestige: Nobel prize, iPS, publications, universities or pharma partners."
    ),
}
CATEGORIES: tuple[str, ...] = tuple(CATEGORY_DEFINITIONS)
EVENT_TYPES: dict[str, str] = {
    "new": "A claim appeared on a page (or on the whole site) since the previous good fetch.",
    "changed": "The claim's sentence was edited; text is the new sentence, old_text the old one.",
    "removed": "A successful fetch of the page no longer contains the claim; text is the old sentence.",
    "reclassified": "New extraction rules found, dropped or re-categorised a claim in stored pages; "
    "the site did not change.",
}
