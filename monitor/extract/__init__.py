"""Claim extraction: HTML or text → claims, with rules read from config/rules/.

Public interface: `Extractor`, `load_extractor`, `normalise_sentence`.
"""

from monitor.extract.extractor import Extractor, load_extractor
from monitor.extract.text import normalise_sentence

__all__ = ["Extractor", "load_extractor", "normalise_sentence"]
