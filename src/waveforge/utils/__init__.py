from waveforge.utils.atomic import atomic_path, atomic_write_bytes, atomic_write_text, check_output_path, sweep_stale_temps

__all__ = ["atomic_path", "atomic_write_bytes", "atomic_write_text", "check_output_path", "sweep_stale_temps"]
