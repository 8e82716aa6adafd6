"""A plug-in package whose modules fail to import, on purpose (tests of plug-in isolation)."""
