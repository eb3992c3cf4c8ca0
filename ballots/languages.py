"""The languages OpenPrimary speaks: a code and each one's own name.

The election file's ``languages`` list is checked against these; the
messages themselves are ``bot/locale``'s catalogues (``bot/i18n.py``).
"""

from __future__ import annotations

#: Language code -> the language's own name (which a voter sends to switch to it).
SHIPPED = {
    "en": "English",
    "cy": "Cymraeg",
}
