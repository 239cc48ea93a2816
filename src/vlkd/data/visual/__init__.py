"""Visual-knowledge benchmarks in their published formats (`vlkd evaluate visual-knowledge`)."""
