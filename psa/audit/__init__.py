"""Who changed what: the origin of every PSA write and the audit trail it leaves."""
