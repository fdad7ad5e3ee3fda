"""Datasets in the MAESTRO layout."""

from waveforge.data.maestro import COLUMNS, SPLITS, MaestroIndex, MaestroRecord, read_metadata_rows, write_metadata

__all__ = ["COLUMNS", "SPLITS", "MaestroIndex", "MaestroRecord", "read_metadata_rows", "write_metadata"]
