"""The SafeEraser data layer: the benchmark's records, the prompt format, refusals, and the conversion
into LLaMA-Factory datasets. Standard library only (images are checked with Pillow when read)."""
