"""Accounts, roles, bearer tokens and member data keys."""
