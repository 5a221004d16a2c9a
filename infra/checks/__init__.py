"""Offline checks of infra/terraform (the shell scripts here, and the provider schema check)."""
