"""Resources: the PSA's people (technicians, dispatchers, admins), their profile and its tabs."""
