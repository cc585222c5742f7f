"""CRM: accounts (client organisations), their contacts and opportunities."""
