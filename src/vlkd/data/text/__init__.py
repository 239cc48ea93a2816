"""The student's text corpus: raw corpus readers and the memory-mapped token store."""
