"""The sans-I/O AT codec, the command table and their events."""
