"""The PSA host application: the Django project package and the PSA's own apps."""
