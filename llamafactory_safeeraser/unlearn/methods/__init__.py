"""The built-in unlearning methods, one file each: a trainer class, its YAML keys, its loss."""
