"""The organisers' web console (``/organisers/``) and the public results page (``/results/ID``).

Server-rendered pages (Jinja2 through aiohttp-jinja2) with a few lines of
plain JavaScript for live numbers; no script is inline, so the Content
Security Policy forbids every script but our own file.  ``install`` plugs it
into ``serve``'s app: a sub-application for the console, whose middleware
(``guard.py``) signs organisers in, checks every form's CSRF token and sets
the security headers, and the public routes for published results.
"""

from channels.web.app import install

__all__ = ["install"]
