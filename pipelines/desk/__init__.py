"""The clerk's desk (#39): `tieout serve`, a web application over the same functions the
command line calls. ``auth`` (users, sessions, CSRF, sign-in throttle, roles), ``app`` (the
Starlette application and its security headers), ``pages`` (the views), ``templates/``."""
