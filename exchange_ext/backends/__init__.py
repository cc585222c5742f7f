"""Mail-server backends behind one interface (:mod:`exchange_ext.backends.base`)."""
