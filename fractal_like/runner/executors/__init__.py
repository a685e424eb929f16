"""Executors run units of work; they know files and processes, never HTTP or the database."""
