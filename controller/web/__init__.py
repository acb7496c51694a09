"""The cabinet's screens: the touchscreen (kiosk) and the pharmacy pages, served by one ASGI app
running in the controller's event loop (see :mod:`controller.web.app`)."""
