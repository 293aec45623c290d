"""Widgets of the console: charts, tables and the server strip (all fed plain data)."""
