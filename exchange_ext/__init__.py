"""The MS Exchange extension: keeps PSA calendar items and contacts in sync with Exchange."""
