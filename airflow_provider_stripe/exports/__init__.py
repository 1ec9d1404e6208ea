"""Exports: resources and schemas, file formats, run windows, parallel slices, report runs, lineage."""
