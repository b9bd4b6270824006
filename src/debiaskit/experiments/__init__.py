"""Run configuration, run directories, sweeps and result collection."""
