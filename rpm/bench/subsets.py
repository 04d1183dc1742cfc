"""RPGBench's subset tags matched onto the stable subset names of `rpm.core.names`.

RPGBench ships five splits (IDTrain, IDTest, OOD1Test user shift, OOD2Test character shift,
OOD3Test dialogue compositional shift); the OOD records carry a `subset_tag`. Tags are matched
robustly (the paper's Table 10 writes "Literature-Fictional", the authors' scripts "Literature")
and an unknown tag fails loudly.
"""

from __future__ import annotations

import re

from rpm.core.errors import RpmInputError
from rpm.core.names import SUBSET_NAMES, SUBSETS, Subset

_BY_NAME = {s.name: s for s in SUBSETS}


def subset(name: str) -> Subset:
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown subset {name!r}; known subsets: {', '.join(SUBSET_NAMES)}") from None


def _key(text: str) -> str:
    text = text.strip().lower().replace("&", "and")
    text = re.sub(r"[-_ ](fictional|real|reallife)$", "", text)  # "Literature-Fictional" -> "literature"
    return re.sub(r"[^0-9a-z]+", "", text)


_TAG_INDEX: dict[str, str] = {}
for _s in SUBSETS:
    if _s.shift == "id":
        continue
    for _alias in (_s.tag, _s.name, _s.label, *_s.aliases):
        _TAG_INDEX[_key(_alias)] = _s.name


def subset_for_tag(tag: str, split: str | None = None) -> str:
    """Map an RPGBench subset tag to its stable subset name; raise ValueError on an unknown tag,
    or on a tag that belongs to another split than the record's."""
    name = _TAG_INDEX.get(_key(tag))
    if name is None:
        known = sorted({s.tag for s in SUBSETS if s.shift != "id"})
        raise RpmInputError(f"unknown subset tag {tag!r}; known tags: {known}")
    if split is not None and _BY_NAME[name].split != split:
        raise RpmInputError(f"subset tag {tag!r} ({name}) belongs to split {_BY_NAME[name].split}, not {split}")
    return name
