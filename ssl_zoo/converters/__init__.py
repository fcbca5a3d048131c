"""Converters: readers (container formats) → rules (pure key mapping) per family."""
