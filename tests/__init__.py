"""Real parts for anaconda_auth's tests: TLS CA, HTTPS server, proxy, keyring daemon, OpenID Provider.

The pytest fixtures that use these live in the repository's root ``conftest.py``; each module here
is plain library code (stdlib, plus ``trustme`` and ``keyring`` where a module says so), so a helper
can also be used from a script. ``useragent.py`` and ``browser_login.py`` are also runnable as
``BROWSER`` hooks and import nothing from this package.
"""
