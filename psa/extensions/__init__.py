"""Extension points of the PSA: profile tabs and admin pages that extensions register.

The PSA knows nothing about any particular extension; an extension's ``AppConfig.ready()``
calls :func:`psa.extensions.registry.register_profile_tab` and
:func:`psa.extensions.registry.register_extension_page`.
"""
