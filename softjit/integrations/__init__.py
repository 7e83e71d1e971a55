"""Integrations with other array libraries, imported only when such an
array is passed (the core never imports them eagerly)."""
