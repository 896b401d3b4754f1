"""Integrations with frameworks (import each submodule only if you use that framework)."""
