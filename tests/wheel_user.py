"""A user's file type-checked against the INSTALLED wheel (tests/test-all, "typed wheel").

mypy must accept the first part and report exactly the calls marked ``wrong``: an installed
anaconda_auth.py alone would be untyped (PEP 561 has no marker for a single-file module), so
this passes only when the wheel's generated stubs are found.
"""

import anaconda_auth

config: anaconda_auth.Config = anaconda_auth.resolve_config()
key: str = anaconda_auth.get_api_key(config)
status: int = anaconda_auth.request("GET", "/api/account", config=config).status

anaconda_auth.get_api_key(1)  # wrong: an int is no config
anaconda_auth.request("GET")  # wrong: the URL is missing
